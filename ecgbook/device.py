"""The compute device: one place that picks CUDA when present and names the device in provenance.

Bottom layer (imports only torch), so that models, training, the technique modules and the
distributed helpers all choose the device the same way.
"""
from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given (a :class:`torch.device` or a name such as ``"cuda:1"``), else CUDA when
    ``torch.cuda.is_available()``, else CPU; ``"auto"`` means the same as ``None``.

    Raises ``RuntimeError`` (from torch) for a malformed device name.
    """
    if isinstance(device, torch.device):
        return device
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device | str) -> str:
    """Human-readable device name for provenance (``cuda: NVIDIA H100 …`` or ``cpu (2 threads)``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"
