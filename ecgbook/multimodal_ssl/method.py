"""The technique of Phan et al. (IEEE BHI 2022): the two modalities' DINO views (:func:`time_views`,
:func:`spectrogram_views`), the encoders at a named size (:func:`build_encoder`), pre-training
(:func:`pretrain`, DINO or SimCLR through :func:`ecgbook.train.fit`), the downstream classifiers
(:func:`build_classifier`), the gate weights (:func:`gate_weights`) and the threshold-optimism
measurement (:func:`threshold_optimism`). See :mod:`ecgbook.multimodal_ssl`.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import augment
from ..batches import ArrayDataset, window_starts
from ..device import pick_device
from ..metrics import apply_thresholds, choose_thresholds, f1_scores
from ..models.fusion import FusionClassifier, ModalityClassifier, Spectrogram, load_encoder_state
from ..models.seresnet2d import SEResNet2d
from ..models.xresnet1d import XResNet1d
from ..ssl import DINOConfig, DINOModel, DINOTask, SimCLRModel, SimCLRTask, linear_probe, pooled_features
from ..train import TrainConfig, fit

WINDOW = 250  #: 2.5 s at 100 Hz (official ``signal_size``, ``DINO_signal.py:222``)

#: Encoder sizes. ``paper`` is the official xresnet1d50 / SE-ResNet34; the smaller ones keep the
#: architecture (stages, kernels, SE blocks, concat pooling) and shrink depth and width for CPUs.
ENCODER_SIZES = {
    "paper": {"time": {"layers": (3, 4, 6, 3), "width": 64}, "spec": {"layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512)}},
    "small": {"time": {"layers": (1, 1, 1, 1), "width": 32}, "spec": {"layers": (1, 1, 1, 1), "widths": (16, 32, 64, 128)}},
    "tiny": {"time": {"layers": (1, 1), "width": 8}, "spec": {"layers": (1, 1), "widths": (8, 16)}},
}


def build_encoder(modality: str, size: str = "paper", leads: int = 12) -> nn.Module:
    """A fresh encoder: ``"time"`` → :class:`XResNet1d`, ``"spec"`` → :class:`SEResNet2d`, at ``size``
    (a key of :data:`ENCODER_SIZES`). Raises ``ValueError`` for an unknown modality or size."""
    if size not in ENCODER_SIZES:
        raise ValueError(f"unknown encoder size {size!r}; expected one of {sorted(ENCODER_SIZES)}")
    if modality == "time":
        return XResNet1d(leads, **ENCODER_SIZES[size]["time"])
    if modality == "spec":
        return SEResNet2d(leads, **ENCODER_SIZES[size]["spec"])
    raise ValueError(f"unknown modality {modality!r}; expected 'time' or 'spec'")


# ============================================================================ views


@dataclass
class ViewSettings:
    """Augmentation settings (defaults: the official code).

    Time series (``DINO_signal.py:226, 236-238``, ``DINO_dataloader.py:97-102``): random resized
    crop of 50–100 % (global) / 10–50 % (local) of the window, back to ``local_samples`` (default
    250: the official ``output_size=100`` of local crops is ignored by ``TRandomResizedCrop``,
    ``timeseries_transformations.py:190``), per-lead time-out 20–40 %, Gaussian noise σ 0.005–0.025
    mV (``lead_scale`` = 1 / lead std turns mV into standardised units).
    Spectrogram (``DINO_dataloader.py:526-550``): time crop 60–100 % / 30–60 % zero-padded back
    (centred), per-lead time cutout 10–35 %, and the frequency cutout (one bin per lead) the
    official code builds but never applies (``:533-534``: its result is overwritten).
    """

    global_scale: tuple = (0.5, 1.0)
    local_scale: tuple = (0.1, 0.5)
    local_samples: int | None = None
    time_out: tuple = (0.2, 0.4)
    sigma: tuple = (0.005, 0.025)
    lead_scale: np.ndarray | None = None
    spec_global_scale: tuple = (0.6, 1.0)
    spec_local_scale: tuple = (0.3, 0.6)
    spec_cutout: tuple = (0.1, 0.35)
    freq_cutout: bool = True


def time_views(x: torch.Tensor, n_local: int, generator: torch.Generator, settings: ViewSettings | None = None):
    """DINO views of a batch of windows ``x (batch, leads, samples)``: ``([2 global], [n_local local])``,
    each ``(batch, leads, samples)`` (local: ``local_samples``) on ``x``'s device."""
    st = settings or ViewSettings()

    def view(scale, out):
        v = augment.random_resized_crop(x, scale, out_samples=out, generator=generator)
        v = augment.time_out(v, st.time_out, generator=generator)
        return augment.gaussian_noise(v, st.sigma, lead_scale=st.lead_scale, generator=generator)

    return ([view(st.global_scale, None) for _ in range(2)],
            [view(st.local_scale, st.local_samples) for _ in range(n_local)])


def spectrogram_views(
    x: torch.Tensor,
    n_local: int,
    generator: torch.Generator,
    spectrogram: Spectrogram,
    settings: ViewSettings | None = None,
):
    """DINO views of the spectrogram modality: ``spectrogram(x)`` ``(batch, leads, 13,
    21)``, then per view frequency cutout, time cutout and a time crop zero-padded back
    to 21 frames. Returns ``([2 global], [n_local local])`` of ``(batch, leads, freqs,
    frames)``."""
    st = settings or ViewSettings()
    with torch.no_grad():
        s = spectrogram(x)

    def view(scale):
        v = augment.spec_freq_cutout(s, generator=generator) if st.freq_cutout else s
        v = augment.spec_time_cutout(v, st.spec_cutout, generator=generator)
        return augment.spec_time_crop(v, scale, generator=generator)

    return [view(st.spec_global_scale) for _ in range(2)], [
        view(st.spec_local_scale) for _ in range(n_local)
    ]


class SpectrogramEncoder(nn.Module):
    """Spectrogram front end + 2-D encoder as one ``(batch, leads, samples) → (batch, d)`` module
    (for feature extraction from plain windows)."""

    def __init__(self, spectrogram: Spectrogram, encoder: nn.Module):
        super().__init__()
        self.spectrogram, self.encoder = spectrogram, encoder
        self.out_features = encoder.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.spectrogram(x))


# ============================================================================ pretraining


@dataclass
class PretrainResult:
    """A pretrained encoder (DINO: the teacher's; SimCLR: the encoder), the fit, and throughput."""

    encoder: nn.Module
    fit: object
    windows_per_s: float
    wall_time_s: float
    history: list = field(default_factory=list)


def center_windows(X: np.ndarray, window: int = WINDOW, lengths: np.ndarray | None = None) -> np.ndarray:
    """The middle ``window`` samples of every record: ``(records, leads, samples)`` → ``(records, leads, window)``.
    ``lengths`` ``(records,)``: valid samples of zero-padded records (the middle of each record's
    valid part; a record shorter than ``window`` gives its first ``window`` samples)."""
    if lengths is None:
        start = (X.shape[-1] - window) // 2
        return np.ascontiguousarray(X[..., start:start + window], dtype=np.float32)
    starts = np.maximum((np.asarray(lengths) - window) // 2, 0)
    return np.stack([np.asarray(X[i, :, s:s + window], dtype=np.float32) for i, s in enumerate(starts)])


def probe_criterion(modality: str, X_train: np.ndarray, Y_train: np.ndarray, X_val: np.ndarray, Y_val: np.ndarray,
                    spectrogram: Spectrogram | None = None, C: float = 0.1, *,
                    lengths_train: np.ndarray | None = None, lengths_val: np.ndarray | None = None) -> Callable:
    """``probe(encoder, device) -> float``: validation macro AUROC of a logistic-regression probe on
    the encoder's features of the centre window of each record (training folds → fold 9); the
    pretraining's epoch-selection criterion. Uses labels of the training and validation folds only.
    ``lengths_*``: valid samples of zero-padded records (:func:`center_windows`)."""
    Xt, Xv = center_windows(X_train, lengths=lengths_train), center_windows(X_val, lengths=lengths_val)

    def probe(encoder, device):
        enc = SpectrogramEncoder(spectrogram, encoder) if modality == "spec" else encoder
        was_training = enc.training
        ft = pooled_features(enc, Xt, window=WINDOW, device=device)
        fv = pooled_features(enc, Xv, window=WINDOW, device=device)
        enc.train(was_training)
        return linear_probe(ft, Y_train, fv, Y_val, fv, Cs=(C,)).val_auroc

    return probe


def pretrain(modality: str, encoder: nn.Module, X_train: np.ndarray, *, method: str = "dino", epochs: int,
             batch_size: int, lr: float, seed: int = 0, dino: DINOConfig | None = None,
             views: ViewSettings | None = None, spectrogram: Spectrogram | None = None, X_val: np.ndarray | None = None,
             probe: Callable | None = None, warmup_epochs: float = 0.0, min_lr: float = 1e-6,
             checkpoint_dir: str | Path | None = None, device: str | None = None,
             lengths: np.ndarray | None = None, val_lengths: np.ndarray | None = None) -> PretrainResult:
    """Pretrain ``encoder`` on unlabelled training-fold records ``X_train (records, leads, samples)``.
    ``lengths`` / ``val_lengths``: valid samples of zero-padded records of ``X_train`` / ``X_val``
    (windows are then drawn inside each record, :class:`~ecgbook.train.ArrayDataset`).

    Each epoch draws one random 2.5-s window per record (official ``sample_items_per_record=1``,
    ``DINO_signal.py:243``) and builds the modality's views on the device. ``method``: ``"dino"``
    (:class:`~ecgbook.ssl.DINOTask`, 2 global + ``dino.n_local`` local views) or ``"simclr"``
    (two global views, NT-Xent τ 0.1). Optimiser AdamW, linear warm-up then cosine to ``min_lr``
    (DINO: lr 5e-4 × batch/256, 10 warm-up epochs); the epoch kept is the best ``probe`` score
    when given, else the lowest self-supervised loss on the centre windows of ``X_val``.
    ``X_val`` must not be used for training (it is not).

    Returns a :class:`PretrainResult`: DINO's teacher encoder (as DINO evaluates; the official code
    fine-tunes from the student, ``README.md`` step 5) or SimCLR's encoder, at the kept epoch.
    """
    if modality not in ("time", "spec"):
        raise ValueError(f"pretrain: modality {modality!r}; expected 'time' or 'spec'")
    if modality == "spec" and spectrogram is None:
        raise ValueError("pretrain: the spectrogram modality needs a fitted Spectrogram")
    st = views or ViewSettings()
    if modality == "time":
        make_views = lambda x, n, g: time_views(x, n, g, st)  # noqa: E731
    else:
        spectrogram = spectrogram.to(pick_device(device))
        make_views = lambda x, n, g: spectrogram_views(x, n, g, spectrogram, st)  # noqa: E731
    val = center_windows(X_val, lengths=val_lengths) if X_val is not None else None
    if method == "dino":
        cfg = dino or DINOConfig()
        model = DINOModel(encoder, cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim, cfg.student_temp,
                          cfg.center_momentum, cfg.centering)
        task = DINOTask(make_views, epochs, cfg, val_X=val, probe=probe, seed=seed)
        wd = cfg.weight_decay
    elif method == "simclr":
        model = SimCLRModel(encoder)
        task = SimCLRTask(make_views, 0.1, val_X=val, probe=probe, seed=seed)
        wd = 1e-6
    else:
        raise ValueError(f"pretrain: method {method!r}; expected 'dino' or 'simclr'")
    train_cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=wd, patience=None, seed=seed,
                            device=device, schedule="cosine", warmup_epochs=warmup_epochs, min_lr=min_lr,
                            grad_clip=3.0, checkpoint_dir=checkpoint_dir, overwrite=checkpoint_dir is not None)
    t0 = time.perf_counter()
    res = fit(model, ArrayDataset(X_train, None, crop=WINDOW, seed=seed, lengths=lengths), task=task, cfg=train_cfg)
    wall = time.perf_counter() - t0
    enc = model.teacher.encoder if method == "dino" else model.encoder
    return PretrainResult(enc.cpu(), res, res.samples_per_s, wall, res.history)


def save_encoder(encoder: nn.Module, path: str | Path) -> Path:
    """Write the encoder's state dict atomically (``torch.save`` to a temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save({k: v.detach().cpu() for k, v in encoder.state_dict().items()}, tmp)
    tmp.replace(path)
    return path


# ============================================================================ downstream


def build_classifier(kind: str, n_classes: int, *, size: str, spectrogram: Spectrogram,
                     time_state: str | Path | dict | None = None, spec_state: str | Path | dict | None = None) -> tuple[nn.Module, dict]:
    """A downstream classifier with (optionally) pretrained encoders.

    ``kind``: ``"time"`` / ``"spec"`` (one modality), ``"gate"`` / ``"concat"`` (both fused).
    ``time_state`` / ``spec_state``: pretrained encoder weights (path or state dict), loaded with
    every key matched (:func:`~ecgbook.models.fusion.load_encoder_state`); ``None``: random init.
    Returns ``(model, {"time": tensors loaded, "spec": tensors loaded})``.
    """
    loaded = {}

    def encoder(modality, state):
        enc = build_encoder(modality, size)
        if state is not None:
            loaded[modality] = load_encoder_state(enc, state)
        return enc

    spec = copy.deepcopy(spectrogram).cpu()
    if kind == "time":
        return ModalityClassifier(encoder("time", time_state), n_classes), loaded
    if kind == "spec":
        return ModalityClassifier(encoder("spec", spec_state), n_classes, spec), loaded
    if kind in ("gate", "concat"):
        return FusionClassifier(encoder("time", time_state), encoder("spec", spec_state), spec, n_classes, kind), loaded
    raise ValueError(f"build_classifier: kind {kind!r}; expected time, spec, gate or concat")


@torch.no_grad()
def gate_weights(model: FusionClassifier, X: np.ndarray, *, window: int = WINDOW, stride: int | None = None,
                 batch_size: int = 256, device=None) -> np.ndarray:
    """Gate weights ``(records, 2)`` — (time series, spectrogram) — averaged over the windows of
    each record. Raises ``ValueError`` for a model without a gate."""
    if getattr(model, "gate_fc", None) is None:
        raise ValueError("gate_weights: the model has no gate (fusion='concat' or one modality)")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model.eval().to(device)
    starts = window_starts(X.shape[-1], window, stride or window // 2)
    out = []
    for lo in range(0, len(X), batch_size):
        x = torch.as_tensor(np.asarray(X[lo:lo + batch_size], dtype=np.float32), device=device)
        g = torch.stack([model(x[..., s:s + window])["gate"].float() for s in starts]).mean(0)
        out.append(g.cpu().numpy())
    return np.concatenate(out)


def threshold_optimism(y_val: np.ndarray, val_scores: np.ndarray, y_test: np.ndarray, test_scores: np.ndarray,
                       classes: Sequence[str]) -> dict:
    """How optimistic per-class thresholds tuned on the reported fold make the test score.

    Thresholds maximising each class's F1 are chosen (a) on the validation fold and (b) on the test
    fold itself (what the official ``threshold_search.py:65-150`` does: it searches and reports on
    the same fold, which also chose the checkpoint). Both are applied to the same test scores.
    Returns ``{"val": {...}, "test": {...}, "optimism": {...}}`` with sample-wise and macro F1.
    """
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (yt, sc) in {"val": (y_val, val_scores), "test": (y_test, test_scores)}.items():
            th = choose_thresholds(yt, sc, metric="f1", class_names=list(classes))
            f1 = f1_scores(y_test, apply_thresholds(test_scores, th))
            out[name] = {"f1_sample": float(f1["sample"]), "f1_macro": float(f1["macro"]), "thresholds": th.tolist()}
    out["optimism"] = {k: out["test"][k] - out["val"][k] for k in ("f1_sample", "f1_macro")}
    return out


def pretraining_throughput(modality: str = "time", *, size: str = "small", records: int = 256, batch_size: int = 128,
                           n_local: int = 4, out_dim: int = 4096, local_samples: int | None = 100, epochs: int = 1,
                           device: str | None = None, seed: int = 0) -> dict:
    """Benchmark of DINO pretraining (for ``benchmarks/run.py``): ``epochs`` epochs on ``records``
    synthetic standard-normal 10-s records (speed only; no result is drawn from them).

    Returns ``{"modality", "size", "windows_per_s" (training windows per wall second, from
    :func:`ecgbook.train.fit`), "windows_per_cpu_s" (per second of this process's CPU time: stable
    on a shared machine), "wall_s", "device"}``.
    """
    X = np.random.default_rng(seed).standard_normal((records, 12, 1000)).astype(np.float32)
    spec = Spectrogram().fit(X[:32]) if modality == "spec" else None
    c0, w0 = time.process_time(), time.perf_counter()
    res = pretrain(modality, build_encoder(modality, size), X, epochs=epochs, batch_size=batch_size, lr=5e-4,
                   dino=DINOConfig(out_dim=out_dim, n_local=n_local), views=ViewSettings(local_samples=local_samples),
                   spectrogram=spec, X_val=X[:batch_size], device=device, seed=seed)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"modality": modality, "size": size, "windows_per_s": res.windows_per_s,
            "windows_per_cpu_s": records * epochs / cpu if cpu > 0 else float("nan"), "wall_s": wall,
            "device": res.fit.device}
