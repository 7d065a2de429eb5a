"""Published pre-trained encoders of the SSL chapters: pinned, verified, loaded, or written for publishing.

Users of these techniques ask for released weights (tmehari/ecg-selfsupervised#4, kweimann/ECG-JEPA#1).
Chapters 4 (:mod:`ecgbook.multimodal_ssl`, DINO) and 6 (:mod:`ecgbook.lead_agnostic_ssl`,
wav2vec 2.0 + CMSC + RLM) therefore load a pre-trained encoder instead of pre-training one when

* ``ECGBOOK_CHECKPOINTS`` names a folder, or an ``https://`` / ``file://`` base URL, holding
  ``<profile>/<chapter>-<method>.pt`` (:func:`file_name`), and
* its SHA-256 is known: pinned in :data:`PINNED` (the project's published encoders), or listed in
  ``<base>/<profile>/SHA256SUMS`` when the user trusts that list explicitly with
  ``ECGBOOK_TRUST_CHECKPOINTS=<sha256 of that SHA256SUMS file>[,…]`` or ``=any`` (their own run).

Anything else — the variable unset, no hash known, or the file absent at the base — means "no
published encoder: pre-train", as before. A file whose SHA-256 differs from the expected one is
refused with :class:`~ecgbook.data.download.ChecksumError` naming the file, the expected and the
actual hash, and is never unpickled. URLs go through :func:`ecgbook.data.download.fetch` (atomic,
resumable, verified; redirected by ``ECGBOOK_MIRROR`` like every download) into
``<data dir>/checkpoints/published/<profile>/``. A verified file is read with
``torch.load(weights_only=True)`` (:func:`ecgbook.train.load_checkpoint`) and must match the
chapter's architecture: same configuration and the same state-dict keys and shapes, else
:class:`EncoderMismatchError`.

Publishable format (:data:`FORMAT`), written by :func:`publish` to
``_build/checkpoints/<profile>/<chapter>-<method>.pt`` (``$ECGBOOK_CHECKPOINTS_OUT`` overrides the
folder) with a ``SHA256SUMS`` beside it (``<sha256>  <file>`` lines, updated under a file lock)::

    {"format": "ecgbook.encoder/1", "chapter", "profile", "method",
     "state_dict": {name: tensor}, "config": {...},          # architecture, compared on load
     "provenance": {"commit", "dirty", "profile", "device", "epochs", "torch", "created"},
     "training": {...}}                                       # the chapter's run summary (history…)

The GPU workflow (``.github/workflows/gpu-book.yml``) uploads that folder; pinning a published
hash in :data:`PINNED` makes every reader load it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import config
from .data.download import ChecksumError, MissingFileError, fetch, parse_sha256sums
from .files import file_lock, sha256sum, write_atomic

FORMAT = "ecgbook.encoder/1"
ENV = "ECGBOOK_CHECKPOINTS"
TRUST_ENV = "ECGBOOK_TRUST_CHECKPOINTS"
OUT_ENV = "ECGBOOK_CHECKPOINTS_OUT"
SUMS = "SHA256SUMS"

#: SHA-256 of each published encoder, by ``(chapter, profile, method)``. ``None``: no encoder
#: published yet (the chapter pre-trains). Filled from the ``SHA256SUMS`` of a GPU job's
#: ``checkpoints`` artifact once its encoders are checked and released.
PINNED: dict[tuple[str, str, str], str | None] = {
    ("multimodal_ssl", "tutorial", "dino_time"): None,
    ("multimodal_ssl", "tutorial", "dino_spec"): None,
    ("multimodal_ssl", "paper", "dino_time"): None,
    ("multimodal_ssl", "paper", "dino_spec"): None,
    ("lead_agnostic_ssl", "tutorial", "W2V+CMSC+RLM"): None,
    ("lead_agnostic_ssl", "paper", "W2V+CMSC+RLM"): None,
}


class EncoderMismatchError(ValueError):
    """A checkpoint's configuration, keys or tensor shapes differ from the chapter's encoder."""


@dataclass
class Loaded:
    """An encoder loaded from a verified checkpoint: ``encoder`` (eval mode, CPU), ``name`` (file
    name), ``sha256``, ``provenance`` and ``training`` (the dicts stored in the file)."""

    encoder: nn.Module
    name: str
    sha256: str
    provenance: dict
    training: dict


def file_name(chapter: str, method: str) -> str:
    """``<chapter>-<method>.pt`` with every character outside ``[A-Za-z0-9._+-]`` replaced by ``_``
    (``("lead_agnostic_ssl", "W2V+CMSC (PTB-XL only)")`` →
    ``lead_agnostic_ssl-W2V+CMSC_PTB-XL_only_.pt``)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{chapter}-{method}") + ".pt"


def out_dir(profile: str) -> Path:
    """Where :func:`publish` writes: ``$ECGBOOK_CHECKPOINTS_OUT/<profile>``, else
    ``<project root>/_build/checkpoints/<profile>``."""
    root = os.environ.get(OUT_ENV) or config.project_root() / "_build" / "checkpoints"
    return Path(root).expanduser().resolve() / profile


def _is_url(base: str) -> bool:
    return base.startswith(("http://", "https://", "file://"))


def _trusted_list(base: str, profile: str) -> dict[str, str]:
    """The base's ``<profile>/SHA256SUMS`` when ``$ECGBOOK_TRUST_CHECKPOINTS`` accepts it, else ``{}``."""
    trust = [t.strip().lower() for t in os.environ.get(TRUST_ENV, "").split(",") if t.strip()]
    if not trust:
        return {}
    if _is_url(base):
        url = f"{base.rstrip('/')}/{profile}/{SUMS}"
        dest = config.data_dir() / "checkpoints" / "published" / profile / SUMS
        dest.unlink(missing_ok=True)  # fetch keeps an unverified existing file: always read the current list
        try:
            path = fetch(url, dest, None, progress=False)
        except MissingFileError:
            return {}
    else:
        path = Path(base).expanduser() / profile / SUMS
        if not path.is_file():
            return {}
    digest = sha256sum(path)
    if "any" not in trust and digest not in trust:
        raise ChecksumError(f"{path}: this checkpoint list's SHA-256 is {digest}, which {TRUST_ENV} does not "
                            f"name (it names {', '.join(trust)}); add it to trust the list, or unset {TRUST_ENV}")
    return parse_sha256sums(path.read_text(), str(path))


def locate(chapter: str, profile: str, method: str) -> tuple[Path, str] | None:
    """The verified checkpoint file of ``(chapter, profile, method)`` and its SHA-256, or ``None``
    (pre-train: ``$ECGBOOK_CHECKPOINTS`` unset, no hash pinned or trusted, or no such file at the base).

    Raises
    ------
    ChecksumError
        The file's SHA-256 differs from the expected one (message: file, expected, actual); a
        downloaded file is kept as ``<file>.corrupt``, a local one is left where it is.
    """
    base = os.environ.get(ENV, "").strip()
    if not base:
        return None
    name = file_name(chapter, method)
    expected = PINNED.get((chapter, profile, method)) or _trusted_list(base, profile).get(name)
    if not expected:
        return None
    expected = expected.lower()
    if _is_url(base):
        dest = config.data_dir() / "checkpoints" / "published" / profile / name
        try:
            return fetch(f"{base.rstrip('/')}/{profile}/{name}", dest, expected), expected
        except MissingFileError:
            return None
    path = Path(base).expanduser() / profile / name
    if not path.is_file():
        return None
    actual = sha256sum(path)
    if actual != expected:
        raise ChecksumError(f"{path}: checksum mismatch for {name}: expected SHA-256 {expected}, got {actual}; "
                            f"refusing to load it (replace the file, or remove it to pre-train)")
    return path, expected


def load(path: str | Path, encoder: nn.Module, config_dict: dict, *, sha256: str = "") -> Loaded:
    """Load a checkpoint in :data:`FORMAT` into ``encoder`` after checking that it fits.

    ``config_dict``: the chapter's architecture (e.g. ``Wav2Vec2Config.to_dict()`` or the encoder
    size's settings); it must equal the stored ``config``. Every key of ``encoder.state_dict()``
    must be present with the same shape, and no other key. Raises :class:`EncoderMismatchError`
    (naming the file and the differences) or :class:`ecgbook.train.CheckpointError` (unreadable,
    not this format). Read with ``torch.load(weights_only=True)``; nothing is loaded on error.
    """
    from .train import CheckpointError, load_checkpoint

    path = Path(path)
    state = load_checkpoint(path, map_location="cpu", keys=("format", "state_dict", "config", "provenance"))
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path}: format {state['format']!r}, expected {FORMAT!r}")
    stored = state["config"]
    if _plain(stored) != _plain(config_dict):
        diff = sorted(k for k in set(stored) | set(config_dict) if _plain(stored.get(k)) != _plain(config_dict.get(k)))
        raise EncoderMismatchError(
            f"{path}: the encoder was trained with another architecture; differing settings "
            + ", ".join(f"{k}: file {stored.get(k)!r} vs chapter {config_dict.get(k)!r}" for k in diff[:8]))
    have, want = state["state_dict"], encoder.state_dict()
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    shapes = [f"{k}: file {tuple(have[k].shape)} vs chapter {tuple(want[k].shape)}"
              for k in sorted(set(have) & set(want)) if tuple(have[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or shapes:
        raise EncoderMismatchError(f"{path}: does not fit the chapter's encoder: {len(missing)} missing keys "
                                   f"{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}, "
                                   f"{len(shapes)} shape differences {shapes[:5]}")
    encoder.load_state_dict(have, strict=True)
    return Loaded(encoder.cpu().eval(), path.name, sha256 or sha256sum(path), dict(state["provenance"]),
                  dict(state.get("training") or {}))


def _plain(value):
    """Tuples and lists compare equal (a config round-tripped through a dict)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def pretrained(chapter: str, profile: str, method: str, encoder: nn.Module, config_dict: dict) -> Loaded | None:
    """:func:`locate` then :func:`load`: the published encoder of ``(chapter, profile, method)``
    loaded into ``encoder``, or ``None`` when there is none (pre-train). Errors as theirs."""
    found = locate(chapter, profile, method)
    if found is None:
        return None
    return load(found[0], encoder, config_dict, sha256=found[1])


def publish(encoder: nn.Module, *, chapter: str, profile: str, method: str, config_dict: dict, device: str,
            epochs: int, training: dict | None = None, root: str | Path | None = None) -> Path:
    """Write ``encoder`` in :data:`FORMAT` to ``<root or out_dir(profile)>/<file_name>`` atomically and
    record its SHA-256 in the folder's ``SHA256SUMS`` (read-modify-write under a file lock, so two
    processes publishing at once keep both lines). ``training``: the run's summary (history,
    kept epoch…; stored as JSON-like values: numpy scalars become numbers, other objects text).
    Returns the checkpoint's path. Raises ``ValueError`` naming an existing ``SHA256SUMS`` that is
    malformed (nothing written to it) and ``OSError`` for an unwritable folder (no partial file left)."""
    from .results import git_commit
    from .train import save_checkpoint

    folder = Path(root) / profile if root is not None else out_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    commit, dirty = git_commit()
    obj = {"format": FORMAT, "chapter": chapter, "profile": profile, "method": method,
           "state_dict": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
           "config": dict(config_dict),
           "provenance": {"commit": commit, "dirty": dirty, "profile": profile, "device": str(device),
                          "epochs": int(epochs), "torch": str(torch.__version__),
                          "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
           "training": json.loads(json.dumps(training or {}, default=_plain_scalar))}
    name = file_name(chapter, method)
    sums_path = folder / SUMS
    with file_lock(sums_path):
        path = save_checkpoint(obj, folder / name)
        sums = parse_sha256sums(sums_path.read_text(), str(sums_path)) if sums_path.is_file() else {}
        sums[name] = sha256sum(path)
        write_atomic(sums_path, "".join(f"{h}  {n}\n" for n, h in sorted(sums.items())).encode())
    return path


def _plain_scalar(value):
    """numpy scalars → Python numbers, anything else → its text (``weights_only`` loads plain types only)."""
    return value.item() if hasattr(value, "item") else str(value)


def describe(loaded: Loaded | None, epochs: int | None = None) -> str:
    """The page's sentence on where an encoder came from: ``"pre-trained here for N epochs"`` or
    ``"loaded from <name>, sha256 <first 12>…, trained by commit <c>, profile <p>, on <device> for N epochs"``
    (``(with uncommitted changes)`` after the commit when the training checkout was dirty)."""
    def n_epochs(n) -> str:
        return f"{n} epoch" + ("" if n == 1 else "s")

    if loaded is None:
        return f"pre-trained here for {n_epochs(epochs)}"
    p = loaded.provenance
    return (f"loaded from {loaded.name}, sha256 {loaded.sha256[:12]}…, trained by commit "
            f"{str(p.get('commit', 'unknown'))[:12]}{' (with uncommitted changes)' if p.get('dirty') else ''}, "
            f"profile {p.get('profile', '?')}, on {p.get('device', '?')}"
            + (f" for {n_epochs(p['epochs'])}" if p.get("epochs") is not None else ""))
