"""The technique in the side-by-side comparison (:mod:`ecgbook.comparison`): DINO encoders of both
modalities, pre-trained once on the comparison's pre-training records, evaluated by a linear probe
and by fine-tuning the gate-fusion classifier, each beside its random-initialisation control.

:class:`DinoEncoders` is the one pre-training shared by the DINO methods (the chapter's pre-training,
:func:`~ecgbook.multimodal_ssl.pretrain`, moved onto PTB-XL folds 1–6); :class:`DinoProbe` and
:class:`DinoGateFineTune` are the :class:`~ecgbook.comparison.Method` objects; :func:`methods` builds
the four of them from one budget (the names of :data:`BUDGET_KEYS`, those of the chapter's
parameters). Pre-trained encoders see the 12-lead layout with absent leads set to zero
(``lead_input = "zero-filled"``, :func:`ecgbook.data.records.keep_leads`, after standardisation).

Source: Phan et al., "Multimodal self-supervised learning for 12-lead ECG classification",
IEEE BHI 2022 (DINO per modality, gate fusion); official code UARK-AICV/ECG_SSL_12Lead, whose
facts are cited ``file:line`` in :mod:`ecgbook.multimodal_ssl.method`.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..comparison import Cell, ComparisonData, Method, MethodRun, Split
from ..data.records import LEAD_SUBSETS, keep_leads
from ..models.common import count_parameters
from ..models.fusion import Spectrogram
from ..protocol import Prepared
from ..signal import Standardizer
from ..ssl import DINOConfig, collapse_warnings, fine_tune, label_fraction_subsets, linear_probe, pooled_features
from ..train import seed_everything
from . import method as _method  # module reference: its ``pretrain`` is looked up at call time
from .experiments import PROBE_CS
from .method import WINDOW, SpectrogramEncoder, ViewSettings, build_classifier, build_encoder, probe_criterion

#: The keyword arguments of :func:`methods` that set the budget: the chapter's parameter names
#: (``chapters/04_multimodal_ssl.md``), so a profile's values can be passed as they are.
BUDGET_KEYS = ("encoder_size", "out_dim", "n_local", "local_samples", "pretrain_epochs", "pretrain_batch",
               "pretrain_lr", "momentum", "ft_epochs", "ft_batch", "ft_lr")
#: How :class:`DinoEncoders` keeps an epoch of pre-training.
SELECTIONS = ("loss", "probe")
#: Records per chunk when features of every record are computed (bounds the memory of a full PTB-XL).
_CHUNK = 4096
_CHAPTER = "04_multimodal_ssl"


def _records_key(data: ComparisonData, records: np.ndarray) -> str:
    ids = np.ascontiguousarray(np.asarray(data.ecg_id)[records], dtype=np.int64)
    return hashlib.sha1(ids.tobytes() + repr(data.X.shape).encode()).hexdigest()


class DinoEncoders:
    """The DINO pre-training shared by the DINO methods: a time-series and a spectrogram encoder,
    each pre-trained once, without labels, on the records given to :meth:`pretrain` (PTB-XL folds
    1–6 in a comparison: :meth:`ecgbook.comparison.ComparisonData.pretraining_records`).

    As the chapter (``chapters/04_multimodal_ssl.md``, "Pretraining"): records standardised per lead
    (:class:`~ecgbook.signal.Standardizer`) and the spectrogram normalised per lead
    (:class:`~ecgbook.models.fusion.Spectrogram`), both with statistics of the pre-training part
    only; view noise in mV (``lead_scale`` = 1 / lead sd); ``seed_everything(seed)`` before each
    encoder; :func:`~ecgbook.multimodal_ssl.pretrain` with DINO (``out_dim`` prototypes, ``n_local``
    local views of ``local_samples`` samples, teacher base momentum ``momentum``), ``epochs``,
    ``batch`` windows per step, learning rate ``lr × batch / 256`` (AdamW, ``min(10, epochs // 5)``
    warm-up epochs, cosine).

    **Epoch selection** (no held-out fold is used): a patient-wise part of the pre-training records
    (``monitor_fraction`` of them, whole patients, :func:`ecgbook.ssl.label_fraction_subsets` with
    ``seed``) is held back from pre-training. ``select="loss"`` (default) keeps the epoch with the
    lowest DINO loss on the held-back records' centre windows (fixed views): no label is used.
    ``select="probe"`` keeps, as the chapter does, the epoch with the best linear-probe macro AUROC
    (:func:`~ecgbook.multimodal_ssl.probe_criterion`), here fitted on the labels of the
    pre-training part and scored on the held-back part: it uses labels of folds 1–6, so below 100 %
    of the labels a run has used more labels than its fraction (the chapter's stated leak).

    Downstream inputs (:meth:`inputs`) are standardised with the same statistics (those of training
    records of every rotation, since folds 1–6 always train), then the absent leads are set to zero.
    Raises ``ValueError`` for an unknown ``size`` or ``select``, or ``monitor_fraction`` outside (0, 0.5].
    """

    def __init__(self, size: str, *, out_dim: int, n_local: int, local_samples: int | None, epochs: int,
                 batch: int, lr: float, momentum: float, seed: int = 0, select: str = "loss",
                 monitor_fraction: float = 0.1, device: str | None = None):
        build_encoder("time", size)  # raises for an unknown size
        if select not in SELECTIONS:
            raise ValueError(f"DinoEncoders: select {select!r}; expected one of {SELECTIONS}")
        if not 0 < monitor_fraction <= 0.5:
            raise ValueError(f"DinoEncoders: monitor_fraction {monitor_fraction} outside (0, 0.5]")
        self.size, self.out_dim, self.n_local, self.local_samples = size, int(out_dim), int(n_local), local_samples
        self.epochs, self.batch, self.lr, self.momentum = int(epochs), int(batch), float(lr), float(momentum)
        self.seed, self.select, self.monitor_fraction, self.device = int(seed), select, float(monitor_fraction), device
        self.standardizer: Standardizer | None = None
        self.spectrogram: Spectrogram | None = None
        self.states: dict | None = None        # {"time": state dict, "spec": state dict}
        self.info: dict = {}
        self.pretrain_ids: np.ndarray | None = None   # ecg_id of the records pre-training trained on
        self.monitor_ids: np.ndarray | None = None    # ecg_id of the held-back records (selection)
        self._data, self._key, self._features = None, None, {}

    # ---------------------------------------------------------------- preprocessing and pre-training

    def preprocess(self, data: ComparisonData, records: np.ndarray) -> None:
        """Split ``records`` (indices into ``data``) patient-wise into the pre-training and held-back
        parts and fit the standardiser and the spectrogram's normalisation on the pre-training part.
        Once per ``(data, records)``; the random-initialisation controls need only this. Raises
        ``ValueError`` when ``data`` is not at 100 Hz or ``records`` is empty."""
        records = np.asarray(records, dtype=int)
        key = _records_key(data, records)
        if self._data is data and self._key == key:
            return
        if data.fs != 100:
            raise ValueError(f"DinoEncoders: data at {data.fs} Hz; the technique's windows are 2.5 s at 100 Hz")
        if len(records) == 0:
            raise ValueError("DinoEncoders: no pre-training records")
        part = label_fraction_subsets(data.patient_id[records], (1.0 - self.monitor_fraction,), seed=self.seed)
        inside = np.zeros(len(records), bool)
        inside[part[1.0 - self.monitor_fraction]] = True
        if inside.all():  # too few patients to hold one back: keep the last patient apart
            inside[data.patient_id[records] == data.patient_id[records][-1]] = False
        self._train, self._monitor = records[inside], records[~inside]
        self.standardizer = Standardizer().fit(data.X[self._train])
        self.spectrogram = Spectrogram().fit(self.standardizer.transform(data.X[self._train]))
        self.pretrain_ids, self.monitor_ids = data.ecg_id[self._train], data.ecg_id[self._monitor]
        self._data, self._key, self._features, self.states, self.info = data, key, {}, None, {}

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        """Pre-train both encoders on ``records`` (indices into ``data``; see the class), once per
        ``(data, records)``. Returns ``{"seconds", "epochs", "records", "monitor_records",
        "selection", "time": {...}, "spec": {...}, "warnings"}``: per encoder its ``best_epoch``,
        ``history`` (rows of :func:`ecgbook.train.fit`), ``wall_time_s`` and ``windows_per_s``;
        ``warnings``: :func:`ecgbook.ssl.collapse_warnings` of both."""
        self.preprocess(data, records)
        if self.states is not None:
            return self.info
        t0 = time.perf_counter()
        X = self.standardizer.transform(data.X[self._train])
        X_mon = self.standardizer.transform(data.X[self._monitor])
        views = ViewSettings(local_samples=self.local_samples, lead_scale=1.0 / self.standardizer.std)
        dino = DINOConfig(out_dim=self.out_dim, n_local=self.n_local, momentum=self.momentum)
        states, info, warn = {}, {}, []
        for modality in ("time", "spec"):
            probe = (probe_criterion(modality, X, data.Y[self._train], X_mon, data.Y[self._monitor], self.spectrogram)
                     if self.select == "probe" else None)
            seed_everything(self.seed)
            res = _method.pretrain(modality, build_encoder(modality, self.size), X, method="dino", epochs=self.epochs,
                                   batch_size=self.batch, lr=self.lr * self.batch / 256, dino=dino, views=views,
                                   spectrogram=self.spectrogram, X_val=X_mon, probe=probe,
                                   warmup_epochs=min(10, max(self.epochs // 5, 0)), seed=self.seed, device=self.device)
            states[modality] = {k: v.detach().cpu().clone() for k, v in res.encoder.state_dict().items()}
            info[modality] = {"best_epoch": res.fit.best_epoch, "history": res.history,
                              "wall_time_s": res.wall_time_s, "windows_per_s": res.windows_per_s}
            warn += collapse_warnings(res.history, self.out_dim, name=f"DINO {modality}")
        self.states = states
        self.info = {"seconds": time.perf_counter() - t0, "epochs": self.epochs, "records": int(len(self._train)),
                     "monitor_records": int(len(self._monitor)),
                     "selection": ("lowest DINO loss on held-back pre-training records" if self.select == "loss"
                                   else "linear probe on held-back pre-training records (their labels)"),
                     **info, "warnings": warn}
        return self.info

    # ---------------------------------------------------------------- downstream

    def _check(self, data: ComparisonData, pretrained: bool) -> None:
        if self._data is not data or (pretrained and self.states is None):
            raise RuntimeError("DinoEncoders: call pretrain(data, records) (run_grid does) with this data first")

    def inputs(self, data: ComparisonData, idx: np.ndarray, leads: tuple[str, ...]) -> np.ndarray:
        """``(len(idx), 12, samples)`` float32: records ``idx`` of ``data`` standardised with the
        pre-training statistics, the leads not in ``leads`` set to zero."""
        self._check(data, pretrained=False)
        return keep_leads(self.standardizer.transform(np.asarray(data.X[idx], np.float32)), leads)

    def encoders(self, pretrained: bool, seed: int = 0) -> dict:
        """``{"time": encoder, "spec": encoder}`` taking ``(batch, leads, samples)``: the pre-trained
        teachers, or with ``pretrained=False`` the same architectures at random initialisation
        (``seed_everything(seed)`` before each, as :func:`~ecgbook.multimodal_ssl.frozen_encoders`)."""
        out = {}
        for modality in ("time", "spec"):
            seed_everything(seed)
            enc = build_encoder(modality, self.size)
            if pretrained:
                enc.load_state_dict(self.states[modality])
            out[modality] = SpectrogramEncoder(self.spectrogram, enc) if modality == "spec" else enc
        return out

    def features(self, data: ComparisonData, leads: int, pretrained: bool, seed: int = 0) -> np.ndarray:
        """``(records, d_time + d_spec)``: every record's concatenated pooled features
        (:func:`ecgbook.ssl.pooled_features`, the mean over 2.5-s windows every 1.25 s) of both
        frozen encoders, on the lead set ``leads`` zero-filled; cached per lead set (and ``seed``
        for the random encoders)."""
        self._check(data, pretrained)
        key = (leads, pretrained, None if pretrained else int(seed))
        if key not in self._features:
            encs = self.encoders(pretrained, seed)
            parts = []
            for lo in range(0, len(data), _CHUNK):
                X = self.inputs(data, np.arange(lo, min(lo + _CHUNK, len(data))), LEAD_SUBSETS[leads])
                parts.append(np.concatenate([pooled_features(encs[m], X, window=WINDOW, device=self.device)
                                             for m in ("time", "spec")], 1))
            self._features[key] = np.concatenate(parts)
        return self._features[key]


class DinoProbe(Method):
    """Linear probe of the concatenated features of both frozen encoders (pre-trained, or with
    ``pretrained=False`` the random-initialisation control, seeded by the cell's seed):
    :func:`ecgbook.ssl.linear_probe` on the labelled training records, ``C`` from
    :data:`~ecgbook.multimodal_ssl.PROBE_CS` chosen on ``split.val`` (the chapter's probe of
    ``dino_concat`` / ``random_concat``). No per-epoch history."""

    family = "linear probe"
    lead_input = "zero-filled"
    chapter = _CHAPTER

    def __init__(self, shared: DinoEncoders, *, pretrained: bool = True):
        self.shared, self.pretrained = shared, bool(pretrained)
        self.name = "DINO (linear probe)" if pretrained else "random (linear probe)"
        self.control = "random (linear probe)" if pretrained else None
        self.description = (("DINO-pre-trained" if pretrained else "randomly initialised") +
                            f" time-series + spectrogram encoders ({shared.size}), frozen; logistic regression on "
                            "their concatenated features; pre-training on folds 1–6 (adaptation: the paper "
                            "pre-trains on the Challenge 2020 data)")

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        if self.pretrained:
            return self.shared.pretrain(data, records)
        self.shared.preprocess(data, records)
        return {}

    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        t0 = time.perf_counter()
        F = self.shared.features(data, cell.leads, self.pretrained, cell.seed)
        r = linear_probe(F[train], data.Y[train], F[split.val], data.Y[split.val], F[split.test], Cs=PROBE_CS,
                         seed=cell.seed)
        return MethodRun(r.val_scores, r.test_scores, None, None, None, time.perf_counter() - t0,
                         note=f"C = {r.C:g}")

    def parameters(self, n_classes: int, leads: int = 12) -> int:
        encs = [build_encoder(m, self.shared.size) for m in ("time", "spec")]
        dim = sum(e.out_features for e in encs)
        return sum(count_parameters(e) for e in encs) + (dim + 1) * n_classes


class DinoGateFineTune(Method):
    """The gate-fusion classifier (:func:`~ecgbook.multimodal_ssl.build_classifier` ``"gate"``) with
    the pre-trained encoders (or, ``pretrained=False``, at random initialisation seeded by the cell's
    seed), every weight fine-tuned with :func:`ecgbook.ssl.fine_tune` as the chapter does (random
    2.5-s crops, AdamW one-cycle, epoch chosen on ``split.val`` macro AUROC, test scores max over
    2.5-s windows). ``epochs``, ``batch_size``, ``lr``: the chapter's ``ft_*``. Input: standardised
    with the pre-training records' statistics (:meth:`DinoEncoders.inputs`; the chapter uses its
    task's folds 1–8), absent leads zero."""

    family = "fine-tune"
    lead_input = "zero-filled"
    chapter = _CHAPTER

    def __init__(self, shared: DinoEncoders, *, epochs: int, batch_size: int, lr: float, pretrained: bool = True):
        self.shared, self.pretrained = shared, bool(pretrained)
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.name = "DINO gate (fine-tune)" if pretrained else "random gate (fine-tune)"
        self.control = "random gate (fine-tune)" if pretrained else None
        self.description = (("DINO-pre-trained" if pretrained else "randomly initialised") +
                            f" time-series + spectrogram encoders ({shared.size}) fused by a gate, all weights "
                            "fine-tuned; pre-training on folds 1–6 (adaptation: the paper pre-trains on the "
                            "Challenge 2020 data)")

    def pretrain(self, data: ComparisonData, records: np.ndarray) -> dict:
        if self.pretrained:
            return self.shared.pretrain(data, records)
        self.shared.preprocess(data, records)
        return {}

    def _build(self, n_classes: int, spectrogram: Spectrogram):
        states = self.shared.states if self.pretrained else {"time": None, "spec": None}
        return build_classifier("gate", n_classes, size=self.shared.size, spectrogram=spectrogram,
                                time_state=states["time"], spec_state=states["spec"])[0]

    def run(self, data: ComparisonData, split: Split, train: np.ndarray, cell: Cell) -> MethodRun:
        self.shared._check(data, self.pretrained)
        x = {name: self.shared.inputs(data, idx, cell.lead_names)
             for name, idx in (("train", train), ("val", split.val), ("test", split.test))}
        prepared = Prepared(x["train"], data.Y[train], x["val"], data.Y[split.val], x["test"], data.Y[split.test],
                            list(data.classes), self.shared.standardizer, data.fs)
        t0 = time.perf_counter()
        out = fine_tune(lambda: self._build(len(data.classes), self.shared.spectrogram), prepared,
                        np.arange(len(train)), epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                        seed=cell.seed, device=self.shared.device)
        return MethodRun(out.val_scores, out.test_scores, out.fit.history, out.fit.best_epoch, self.epochs,
                         time.perf_counter() - t0, out.fit.samples_per_s)

    def parameters(self, n_classes: int, leads: int = 12) -> int:
        return count_parameters(build_classifier("gate", n_classes, size=self.shared.size, spectrogram=Spectrogram())[0])


def methods(*, encoder_size: str, out_dim: int, n_local: int, local_samples: int | None, pretrain_epochs: int,
            pretrain_batch: int, pretrain_lr: float, momentum: float, ft_epochs: int, ft_batch: int, ft_lr: float,
            seed: int = 0, select: str = "loss", monitor_fraction: float = 0.1,
            device: str | None = None) -> list[Method]:
    """The technique's four methods, sharing one :class:`DinoEncoders`: ``"DINO (linear probe)"``,
    ``"random (linear probe)"``, ``"DINO gate (fine-tune)"``, ``"random gate (fine-tune)"``.
    The budget keywords (:data:`BUDGET_KEYS`) are the chapter's parameters of the same names
    (``pretrain_lr`` is DINO's base rate, scaled by ``pretrain_batch / 256``); ``seed``: of the
    pre-training; ``select`` / ``monitor_fraction``: the epoch selection of :class:`DinoEncoders`."""
    shared = DinoEncoders(encoder_size, out_dim=out_dim, n_local=n_local, local_samples=local_samples,
                          epochs=pretrain_epochs, batch=pretrain_batch, lr=pretrain_lr, momentum=momentum, seed=seed,
                          select=select, monitor_fraction=monitor_fraction, device=device)
    ft = dict(epochs=ft_epochs, batch_size=ft_batch, lr=ft_lr)
    return [DinoProbe(shared), DinoProbe(shared, pretrained=False),
            DinoGateFineTune(shared, **ft), DinoGateFineTune(shared, pretrained=False, **ft)]
