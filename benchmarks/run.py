"""The book's speed benchmark: ratios of fast paths against the naive ways, measured side by side.

Every timing is repeated (``--repeats``, at least 3) and the **median** is reported; a ratio is never
printed from a single run. Rows (issue 11):

- PTB-XL 100-Hz load: the memory-mapped cache of :mod:`ecgbook.data.cache` vs ``wfdb.rdsamp`` per record.
- Training batches: crops gathered on the device (:meth:`ecgbook.train.ArrayDataset.device_batches`)
  vs a ``DataLoader`` collating per-item crops, time per step of batch ``--batch``.
- Test-time windows: all windows of a batch in one forward (:func:`ecgbook.train.predict`) vs one
  forward per window.
- Bootstrap macro AUROC: the vectorised rank AUROC (:mod:`ecgbook.metrics`) vs one scikit-learn
  ``roc_auc_score`` per class and resample (seconds per resample; 252 × 71 as PTB-XL's ``all`` task).
- Training throughput (samples/s, step time) of every registered model (``resnet1d_wang``,
  ``mrmnet``, and what other modules register, see :func:`register_model`), with achieved
  TFLOP/s (FLOPs of one step counted by :class:`torch.utils.flop_counter.FlopCounterMode`), and on
  CUDA the GPU busy fraction (kernel time / wall time, :mod:`torch.profiler`) and the fraction of
  the device's dense bf16 peak; ``--compile`` adds eager vs :func:`torch.compile`.
- Spectrogram images: scipy on the host and a copy of the images vs torch on the device.
- Pre-training throughput of the self-supervised encoders (DINO windows/s of both modalities,
  wav2vec 2.0 + CMSC + RLM segments/s) and the transfer backbones' frozen feature extraction
  (images/s).
- The ``tutorial`` book's wall time per chapter, read from ``results/tutorial/*.json``.

Usage: ``python benchmarks/run.py [--records N] [--steps N] [--repeats N] [--batch N] [--compile]``.
A full run takes about two minutes on an idle 2-core CPU with the defaults. ``--compile`` is for
GPUs: on the 2-core CPU, compiling the two models' training steps did not finish within 15 minutes.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgbook import config  # noqa: E402
from ecgbook.train import ArrayDataset, describe_device, pick_device, predict  # noqa: E402

MIN_REPEATS = 3

# dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.2}


def bf16_peak(device: torch.device) -> float | None:
    """The device's dense bf16 peak in TFLOP/s, or ``None`` when unknown (CPU, unlisted GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in BF16_PEAK_TFLOPS.items():  # most specific first
        if key in name:
            return value
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def repeat(fn: Callable[[], object], repeats: int, device: torch.device | None = None) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` (the device synchronised after each)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device is not None:
            sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


def ratio(slow: list[float], fast: list[float]) -> str:
    """``median(slow) / median(fast)``; refuses (raises) with fewer than ``MIN_REPEATS`` runs of either."""
    if len(slow) < MIN_REPEATS or len(fast) < MIN_REPEATS:
        raise ValueError(f"a ratio needs at least {MIN_REPEATS} repeats of each side, got {len(slow)} and {len(fast)}")
    return f"{median(slow) / median(fast):.1f}×"


def spread(times: list[float]) -> str:
    return f"{min(times) / median(times):.2f}–{max(times) / median(times):.2f}"


# --------------------------------------------------------------------------------------- registry


@dataclass
class ModelBench:
    """A model to time: ``build(n_classes) -> nn.Module``, input ``(leads, samples)``, and
    ``loss(output, y) -> scalar`` (default BCE on the logits)."""

    build: Callable
    leads: int = 12
    samples: int = 250
    n_classes: int = 71
    loss: Callable | None = None
    note: str = ""


MODELS: dict[str, ModelBench] = {}


def register_model(name: str, build: Callable, **kwargs) -> None:
    """Add a model to the training-throughput rows (e.g. a self-supervised encoder:
    ``register_model("xresnet1d50 (DINO student)", lambda n: ..., loss=...)``). Modules listed in
    ``OPTIONAL_MODULES`` that define ``register_benchmarks(register_model)`` are imported and called."""
    MODELS[name] = ModelBench(build, **kwargs)


def _builtin_models() -> None:
    from ecgbook.models.mrmnet import MutualLearningLoss, build_mrmnet, mrmnet_config
    from ecgbook.models.resnet1d import ResNet1dWang

    register_model("resnet1d_wang", lambda n: ResNet1dWang(n_classes=n))
    register_model("mrmnet (paper config)", lambda n: build_mrmnet(mrmnet_config("paper", n), seed=0),
                   loss=lambda out, y: MutualLearningLoss()(out, y)[0])


OPTIONAL_MODULES = ("ecgbook.multimodal_ssl", "ecgbook.ssl", "ecgbook.lead_agnostic_ssl", "ecgbook.transfer")


def _optional_models() -> list[str]:
    found = []
    for name in OPTIONAL_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a helper's module may not exist yet
            continue
        hook = getattr(module, "register_benchmarks", None)
        if hook is not None:
            hook(register_model)
            found.append(name)
    return found


# --------------------------------------------------------------------------------------- rows


def bench_load(args, rows, device):
    import wfdb

    from ecgbook.data.ptbxl import PTBXL

    db = PTBXL(fs=100, max_records=args.records)
    ids = list(db.available)
    task = db.task("all")  # builds the cache if needed
    rd = repeat(lambda: [wfdb.rdsamp(str(db.record_path(i))) for i in ids], args.repeats)
    cache = repeat(lambda: np.asarray(db.task("all").X, dtype=np.float32).sum(), args.repeats)
    rows.append(("PTB-XL 100 Hz load: cache (memory map, incl. labels) vs wfdb.rdsamp per record",
                 f"{len(ids) / median(rd):,.0f} records/s", f"{len(ids) / median(cache):,.0f} records/s",
                 ratio(rd, cache), spread(cache)))
    return task


def bench_batches(args, rows, device, X, Y):
    n_steps = {}

    def loader_epoch():
        ds = ArrayDataset(X, Y, crop=250, seed=0)
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(0),
                                             pin_memory=device.type == "cuda")
        k = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            k += 1
        n_steps["loader"] = k

    ds_dev = ArrayDataset(X, Y, crop=250, seed=0)
    next(ds_dev.device_batches(device, args.batch, torch.Generator().manual_seed(0), True))  # upload once

    def device_epoch():
        k = 0
        for x, y in ds_dev.device_batches(device, args.batch, torch.Generator().manual_seed(0), True):
            k += 1
        n_steps["device"] = k

    slow = repeat(loader_epoch, args.repeats, device)
    fast = repeat(device_epoch, args.repeats, device)
    steps = n_steps["loader"]
    rows.append((f"training batches ({args.batch} × 12 × 250 crops), per step: device gather vs DataLoader",
                 f"{1e3 * median(slow) / steps:.2f} ms", f"{1e3 * median(fast) / steps:.3f} ms",
                 ratio(slow, fast), spread(fast)))


def bench_predict(args, rows, device, X):
    from ecgbook.models.resnet1d import ResNet1dWang

    model = ResNet1dWang(n_classes=71).to(device).eval()
    Xv = np.array(X[:args.batch * 2], dtype=np.float32)  # a writable copy
    starts = list(range(0, 1000 - 250 + 1, 125))

    @torch.no_grad()
    def per_window():
        for lo in range(0, len(Xv), args.batch):
            b = torch.as_tensor(Xv[lo:lo + args.batch], device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                s = torch.stack([torch.sigmoid(model(b[..., s:s + 250]).float()) for s in starts])
            s.amax(0).cpu()

    one = lambda: predict(model, Xv, window=250, stride=125, batch_size=args.batch, device=device)
    one()
    per_window()
    slow, fast = repeat(per_window, args.repeats, device), repeat(one, args.repeats, device)
    rows.append((f"test-time windows ({len(starts)} per record, resnet1d_wang): one forward vs one per window",
                 f"{len(Xv) / median(slow):,.0f} records/s", f"{len(Xv) / median(fast):,.0f} records/s",
                 ratio(slow, fast), spread(fast)))


def bench_bootstrap(args, rows):
    sys.path.insert(0, str(Path(__file__).parent))
    from bootstrap import problem

    from ecgbook.metrics import bootstrap_ci, macro_auroc

    y_true, y_score = problem(252, 71)
    slow_boot, fast_boot = 5, 200
    reference = lambda t, s: macro_auroc(t, s, method="sklearn").value
    slow = repeat(lambda: bootstrap_ci(reference, y_true, y_score, n_boot=slow_boot, seed=0, fix_classes=True),
                  args.repeats)
    fast = repeat(lambda: bootstrap_ci(macro_auroc, y_true, y_score, n_boot=fast_boot, seed=0), args.repeats)
    slow = [t / slow_boot for t in slow]
    fast = [t / fast_boot for t in fast]
    rows.append(("bootstrap macro AUROC (252 × 71), per resample: vectorised rank vs scikit-learn per class",
                 f"{1e3 * median(slow):.1f} ms", f"{1e3 * median(fast):.2f} ms", ratio(slow, fast), spread(fast)))


def bench_images(args, rows, device):
    """Spectrogram images for the transfer-learning backbones (the chapter's 2-s MIT-BIH beats at
    360 Hz, 224 px): scipy STFT on the host then copy the images vs :func:`ecgbook.signal.spectrogram_images`
    on the device (only the excerpts travel). On a CPU both run on the CPU (the row then measures
    scipy against torch)."""
    import torch.nn.functional as F

    from ecgbook import signal

    settings = signal.SpectrogramSettings()
    x = np.random.default_rng(0).standard_normal((args.batch * 4, 720)).astype(np.float32)

    def host():  # the way before issue 11: numpy/scipy per batch, then images to the device
        _, _, S = signal.spectrogram(x, 360.0, nperseg=settings.nperseg, noverlap=settings.noverlap,
                                     fmax=settings.fmax, log=settings.log)
        S = torch.from_numpy(np.ascontiguousarray(S[:, ::-1]))
        lo, hi = S.amin(dim=(1, 2), keepdim=True), S.amax(dim=(1, 2), keepdim=True)
        S = (S - lo) / (hi - lo).clamp_min(1e-12)
        img = F.interpolate(S[:, None], size=(224, 224), mode="bilinear").repeat(1, 3, 1, 1)
        img = (img - torch.tensor(signal.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
            signal.IMAGENET_STD).view(1, 3, 1, 1)
        return img.to(device)

    def on_device():
        return signal.spectrogram_images(torch.from_numpy(x).to(device), 360.0, settings)

    slow, fast = repeat(host, args.repeats, device), repeat(on_device, args.repeats, device)
    n = len(x)
    rows.append((f"spectrogram images ({n} beats, 224 px): scipy on the host + copy vs torch on the device",
                 f"{n / median(slow):,.0f} images/s", f"{n / median(fast):,.0f} images/s", ratio(slow, fast),
                 spread(fast)))


def bench_ssl(args, ssl_rows, device):
    """Throughput of the self-supervised pre-training loops and of the transfer backbones' frozen
    feature extraction, each timed ``--repeats`` times (median)."""
    from ecgbook import lead_agnostic_ssl, multimodal_ssl
    from ecgbook.models.backbones import extract_features, load_backbone

    dev = device.type
    cases = [("DINO, xresnet1d (time series), tutorial size", "windows (2.5 s)",
              lambda: multimodal_ssl.pretraining_throughput("time", records=128, batch_size=64, device=dev)
              ["windows_per_s"]),
             ("DINO, SE-ResNet34 (spectrogram), tutorial size", "windows (2.5 s)",
              lambda: multimodal_ssl.pretraining_throughput("spec", records=128, batch_size=64, device=dev)
              ["windows_per_s"])]
    for size in ("tutorial",) + (("paper",) if dev == "cuda" else ()):
        cases.append((f"wav2vec 2.0 + CMSC + RLM, {size} size", "segments (5 s)",
                      lambda size=size: lead_agnostic_ssl.pretraining_throughput(
                          size, batch_size=64 if dev == "cuda" else 16, steps=3, device=dev)))
    beats = np.random.default_rng(0).standard_normal((256 if dev == "cuda" else 64, 720)).astype(np.float32)
    for name in ("efficientnet_lite0", "densenet121"):
        backbone = load_backbone(name, weights="random")
        cases.append((f"frozen {name} features (transfer chapter)", "images (224 px)",
                      lambda b=backbone: extract_features(beats, 360.0, b, batch_size=len(beats),
                                                          device=dev).images_per_s))
    for name, unit, fn in cases:
        fn()  # warm-up
        rates = [fn() for _ in range(args.repeats)]
        ssl_rows.append((name, unit, f"{statistics.median(rates):,.0f}",
                         f"{min(rates):,.0f}–{max(rates):,.0f}"))


def union_length(spans) -> float:
    """Total length covered by intervals ``[(start, end), ...]`` (overlaps counted once)."""
    total, end = 0.0, -math.inf
    for lo, hi in sorted(spans):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def gpu_busy_fraction(fn: Callable[[], object], device: torch.device) -> float | None:
    """Time the GPU runs kernels or copies (union of the profiler's CUDA intervals) / wall time
    while ``fn`` runs (``None`` on CPU)."""
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        fn()
        sync(device)
        wall = time.perf_counter() - t0
    from torch.autograd import DeviceType

    spans = ((ev.time_range.start, ev.time_range.end) for ev in prof.events()
                   if getattr(ev, "device_type", None) == DeviceType.CUDA)
    busy_us = union_length(spans)
    return min(busy_us / 1e6 / wall, 1.0) if wall > 0 else None


def bench_models(args, model_rows, device):
    from torch.utils.flop_counter import FlopCounterMode

    use_amp = device.type == "cuda"
    peak = bf16_peak(device)
    for name, spec in MODELS.items():
        torch.manual_seed(0)
        model = spec.build(spec.n_classes).to(device).train()
        loss_fn = spec.loss or (lambda out, y: torch.nn.functional.binary_cross_entropy_with_logits(
            (out if isinstance(out, torch.Tensor) else out["logits"]).float(), y))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))
        x = torch.randn(args.batch, spec.leads, spec.samples, device=device)
        y = (torch.rand(args.batch, spec.n_classes, device=device) > 0.9).float()
        variants = [("eager", model)]
        if args.compile:
            variants.append(("torch.compile", torch.compile(model)))

        def step(m):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                out = m(x)
            with torch.autocast(device.type, enabled=False):
                loss = loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        with FlopCounterMode(display=False) as counter:
            step(model)
        flops = counter.get_total_flops()
        timings = {}
        for label, m in variants:
            for _ in range(3):
                step(m)  # warm-up (and compilation)
            sync(device)
            times = [t / args.steps for t in repeat(lambda: [step(m) for _ in range(args.steps)], args.repeats, device)]
            timings[label] = times
            t = median(times)
            busy = gpu_busy_fraction(lambda: [step(m) for _ in range(args.steps)], device)
            tflops = flops / t / 1e12
            model_rows.append((name, label, f"{args.batch / t:,.0f}", f"{1e3 * t:.1f}", f"{flops / 1e9:.2f}",
                               f"{tflops:.3f}", "—" if peak is None else f"{100 * tflops / peak:.1f} %",
                               "—" if busy is None else f"{100 * busy:.0f} %", spread(times)))
        if "torch.compile" in timings:
            model_rows.append((name, "compile speed-up", ratio(timings["eager"], timings["torch.compile"]),
                               "", "", "", "", "", ""))


def bench_fit_busy(args, rows, device, X, Y):
    """CUDA only: GPU busy fraction of one epoch of :func:`ecgbook.train.fit` (resnet1d_wang),
    device-resident batches vs the DataLoader path."""
    if device.type != "cuda":
        return
    from ecgbook.models.resnet1d import ResNet1dWang
    from ecgbook.train import TrainConfig, fit

    out = {}
    for device_data in (False, True):
        def one_epoch():
            fit(ResNet1dWang(n_classes=Y.shape[1]), ArrayDataset(X, Y, crop=250), X[:64], Y[:64],
                score_fn=lambda t, s: 0.0, cfg=TrainConfig(epochs=1, batch_size=args.batch, device="cuda",
                                                            device_data=device_data, patience=None))
        one_epoch()
        out[device_data] = gpu_busy_fraction(one_epoch, device)
    rows.append(("GPU busy in fit (1 epoch, resnet1d_wang): device batches vs DataLoader",
                 f"{100 * out[False]:.0f} % busy", f"{100 * out[True]:.0f} % busy", "—", "—"))


def tutorial_wall_times() -> list[tuple[str, str, str, str]]:
    folder = config.results_dir() / "tutorial"
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            prov = json.loads(path.read_text())["provenance"]
        except (OSError, ValueError, KeyError) as e:
            out.append((path.stem, "unreadable", str(e)[:40], ""))
            continue
        out.append((path.stem, f"{prov.get('wall_time_s', float('nan')):,.0f} s", str(prov.get("device", "?")),
                    str(prov.get("commit", "?"))[:8]))
    return out


def table(header: tuple, rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300, help="PTB-XL records read with wfdb (default 300)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3, help=f"repeats per timing (>= {MIN_REPEATS}; median)")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the training rows")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd training steps")
    parser.add_argument("--skip", nargs="*", default=[], choices=["load", "batches", "predict", "bootstrap", "images", "models", "ssl"])
    args = parser.parse_args(argv)
    os.environ.setdefault("ECGBOOK_PROGRESS", "0")  # no progress bars between the tables
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be >= {MIN_REPEATS}: a ratio from a single noisy run is not reported")
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    t_start = time.perf_counter()
    print(f"device: {describe_device(device)}; torch {torch.__version__}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}; repeats {args.repeats} (medians)")
    from ecgbook.results import cpu_model
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),)
    print(f"CPU: {cpu_model()}; load average {load[0]:.1f} at start (other processes share the cores: "
          f"ratios are measured side by side, absolute numbers are not)\n")
    rows = []
    task = None
    if "load" not in args.skip:
        task = bench_load(args, rows, device)
    if not {"batches", "predict"} <= set(args.skip):
        from ecgbook.data.ptbxl import PTBXL
        task = PTBXL(fs=100).task("all")  # every record present (the load row may read fewer)
    if task is not None:
        X, Y = np.asarray(task.X, dtype=np.float32), np.asarray(task.Y, dtype=np.float32)
        if "batches" not in args.skip:
            bench_batches(args, rows, device, X, Y)
        if "predict" not in args.skip:
            bench_predict(args, rows, device, X)
        bench_fit_busy(args, rows, device, X, Y)
    if "bootstrap" not in args.skip:
        bench_bootstrap(args, rows)
    if "images" not in args.skip:
        bench_images(args, rows, device)
    print(table(("benchmark", "naive", "fast", "ratio (medians)", "fast min–max / median"), rows))
    if "models" not in args.skip:
        _builtin_models()
        extra = _optional_models()
        model_rows = []
        bench_models(args, model_rows, device)
        print(f"\nTraining steps, batch {args.batch}, random inputs, AdamW"
              f"{', bf16 autocast' if device.type == 'cuda' else ', float32'}"
              f"{'; registered by ' + ', '.join(extra) if extra else ''}:\n")
        print(table(("model", "variant", "samples/s", "step ms", "GFLOP/step", "TFLOP/s", "of bf16 peak",
                     "GPU busy", "min–max / median"), model_rows))
    if "ssl" not in args.skip:
        ssl_rows = []
        bench_ssl(args, ssl_rows, device)
        print("\nPre-training and feature-extraction throughput (random inputs; median of the repeats):\n")
        print(table(("loop", "unit", "per second", "min–max"), ssl_rows))
    walls = tutorial_wall_times()
    if walls:
        print("\nTutorial book, wall time per chapter (results/tutorial/*.json):\n")
        print(table(("chapter", "wall time", "device", "commit"), walls))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),)
    print(f"\nbenchmark wall time: {time.perf_counter() - t_start:.0f} s; load average {load[0]:.1f} at the end")


if __name__ == "__main__":
    main()
