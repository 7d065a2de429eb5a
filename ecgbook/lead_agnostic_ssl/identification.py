"""Patient identification: gallery/probe splits and top-k identification on PTB-XL and MIT-BIH (the
``paper`` profile's ArcFace protocol is in :mod:`.arcface`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.mitdb import MITBIH
from ..data.records import STANDARD_LEADS
from ..signal import resample
from .downstream import embed
from .objectives import FS, LEAD_SUBSETS, SEGMENT, keep_leads, zero_fill

# ----------------------------------------------------------------------------------------------
# Patient identification
# ----------------------------------------------------------------------------------------------
def gallery_probe_split(patient, order, max_probes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gallery = each patient's first record by ``order`` (e.g. recording date); probes = the later ones.

    Only patients with at least two records take part; ties in ``order`` keep the input order.
    ``max_probes``: keep only each patient's next ``max_probes`` records as probes (``1``: the
    official protocol's gallery/probe pair; ``None``: every later record). Returns sorted index
    arrays ``(gallery, probes)`` into the inputs. (The official ``manifest_identification.py``
    takes the first two files in file-system order, lines 61-84; we use the recording date.)
    Raises ``ValueError`` for ``max_probes < 1``, and when no patient has two or more records
    (e.g. one recording per patient: there is nothing to identify), naming the counts.
    """
    if max_probes is not None and max_probes < 1:
        raise ValueError(f"gallery_probe_split: max_probes must be >= 1 or None, got {max_probes}")
    df = pd.DataFrame({"patient": np.asarray(patient), "order": np.asarray(order)})
    df["i"] = np.arange(len(df))
    df = df.sort_values(["patient", "order", "i"], kind="stable")
    rank = df.groupby("patient").cumcount().to_numpy()
    size = df.groupby("patient")["i"].transform("size").to_numpy()
    keep = size >= 2
    if not keep.any():
        raise ValueError(f"gallery_probe_split: 0 of {df['patient'].nunique()} patients have 2 or more recordings "
                         f"({len(df)} recordings); identification needs a gallery and a later probe recording "
                         "of the same patient")
    gallery = df["i"].to_numpy()[keep & (rank == 0)]
    later = rank > 0 if max_probes is None else (rank > 0) & (rank <= max_probes)
    probes = df["i"].to_numpy()[keep & later]
    return np.sort(gallery), np.sort(probes)


def identify(gallery_z, gallery_id, probe_z, probe_id, ks=(1, 5)) -> dict:
    """Top-k identification accuracy by cosine similarity of embeddings.

    ``gallery_z`` ``(G, D)`` with identities ``gallery_id`` ``(G,)`` (distinct), ``probe_z``
    ``(P, D)`` with ``probe_id``. A probe counts as found at ``k`` when its identity's gallery entry
    is among the ``k`` most similar. Returns ``{"top1": ..., "top5": ..., "chance_top1": 1/G, ...,
    "gallery": G, "probes": P}``. Raises ``ValueError`` when a probe's identity is not in the gallery,
    the gallery repeats an identity, or the gallery or the probes are empty (no accuracy to report).
    """
    gallery_id, probe_id = np.asarray(gallery_id), np.asarray(probe_id)
    if not len(gallery_id) or not len(probe_id):
        raise ValueError(f"identify: {len(gallery_id)} gallery and {len(probe_id)} probe recordings; identification "
                         "needs at least one of each (patients with 2 or more recordings)")
    if len(set(gallery_id.tolist())) != len(gallery_id):
        raise ValueError("identify: the gallery repeats an identity")
    pos = {g: i for i, g in enumerate(gallery_id.tolist())}
    missing = [p for p in probe_id.tolist() if p not in pos]
    if missing:
        raise ValueError(f"identify: probe identities {missing[:5]} are not in the gallery")
    g = np.asarray(gallery_z, np.float64)
    p = np.asarray(probe_z, np.float64)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    sim = p @ g.T
    true = np.array([pos[i] for i in probe_id.tolist()])
    true_sim = sim[np.arange(len(p)), true]
    rank = (sim > true_sim[:, None]).sum(1)          # 0 = best; ties count in the probe's favour
    out = {"gallery": len(g), "probes": len(p)}
    for k in ks:
        out[f"top{k}"] = float(np.mean(rank < k))
        out[f"chance_top{k}"] = min(1.0, k / len(g))
    return out


def mitdb_halves(names, *, crops: int = 5, leads_slot: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Within-recording identification data from MIT-BIH records: ``crops`` 5-s crops evenly spread
    over each half of each record, 100 Hz, 12-lead layout. Returns ``(X (records, 2, crops, 12, 500),
    names)``: ``X[:, 0]`` first half, ``X[:, 1]`` second half."""
    db = MITBIH()
    slots = leads_slot or {"MLII": "II"}
    out = []
    for name in names:
        r = db.read(name)
        keep = [i for i, l in enumerate(r.leads) if slots.get(l, l) in STANDARD_LEADS]
        sig = zero_fill(resample(r.signal[keep], 360.0, FS), [slots.get(r.leads[i], r.leads[i]) for i in keep])
        half = sig.shape[-1] // 2
        rec = []
        for h in range(2):
            starts = np.linspace(h * half, (h + 1) * half - SEGMENT, crops).astype(int)
            rec.append(np.stack([sig[:, s:s + SEGMENT] for s in starts]))
        out.append(np.stack(rec))
    return np.stack(out).astype(np.float32), np.array(list(names))

def identification_ptbxl(encoders: dict, X, patient, dates, strat_fold, subsets, *, folds=(9, 10), device=None):
    """Zero-shot patient identification on PTB-XL records of ``folds`` (never seen in pre-training).

    Gallery: each patient's first ECG by recording date; probes: the later ones; cosine similarity
    of pooled embeddings (:func:`identify`). Returns ``(rows, example)`` where ``example`` holds one
    probe's ranked gallery for the page.
    """
    keep = np.flatnonzero(np.isin(strat_fold, folds))
    g, p = gallery_probe_split(np.asarray(patient)[keep], np.asarray(dates)[keep])
    g, p = keep[g], keep[p]
    rows, example = [], None
    for name, enc in encoders.items():
        for n_leads in subsets:
            Z = embed(enc, keep_leads(np.asarray(X[np.concatenate([g, p])], np.float32), LEAD_SUBSETS[n_leads]),
                      device=device)
            res = identify(Z[:len(g)], np.asarray(patient)[g], Z[len(g):], np.asarray(patient)[p])
            for k in (1, 5):
                rows.append({"metric": f"top{k}_accuracy", "value": res[f"top{k}"], "chance": res[f"chance_top{k}"],
                             "model": name, "task": "patient_identification_ptbxl", "leads": n_leads,
                             "evaluation": "identification", "gallery": res["gallery"], "probes": res["probes"],
                             "split": f"folds {','.join(map(str, folds))}"})
            if example is None and len(p):
                gz = Z[:len(g)] / np.linalg.norm(Z[:len(g)], axis=1, keepdims=True)
                pz = Z[len(g)] / np.linalg.norm(Z[len(g)])
                order = np.argsort(-(gz @ pz))[:5]
                example = {"model": name, "leads": n_leads, "probe_patient": int(np.asarray(patient)[p[0]]),
                           "ranked_gallery_patients": [int(np.asarray(patient)[g][i]) for i in order],
                           "similarities": [float((gz @ pz)[i]) for i in order]}
    return rows, example


def identification_mitdb(encoders: dict, names, *, crops: int = 5, device=None) -> list[dict]:
    """Within-recording identification across the halves of MIT-BIH records (DS2: never pre-trained on,
    except that record 202's patient gave DS1's record 201 to the corpus: ``mitdb.same_patient_pairs``).

    Gallery: the mean embedding of ``crops`` 5-s crops of each record's first half; probes: each
    crop of its second half. An easier task than patient identification (same session).
    """
    X, rec = mitdb_halves(names, crops=crops)
    rows = []
    for name, enc in encoders.items():
        Z = embed(enc, X.reshape(-1, 12, SEGMENT), device=device).reshape(len(rec), 2, crops, -1)
        res = identify(Z[:, 0].mean(1), rec, Z[:, 1].reshape(-1, Z.shape[-1]), np.repeat(rec, crops))
        for k in (1, 5):
            rows.append({"metric": f"top{k}_accuracy", "value": res[f"top{k}"], "chance": res[f"chance_top{k}"],
                         "model": name, "task": "recording_identification_mitdb_ds2", "leads": 2,
                         "evaluation": "identification", "gallery": res["gallery"], "probes": res["probes"]})
    return rows
