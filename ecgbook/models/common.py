"""Helpers shared by the models of the book."""
from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module, example_input: torch.Tensor | None = None) -> int:
    """Number of parameters of ``model``; with ``example_input``, of the modules that actually run
    in ``model(example_input)``.

    Without ``example_input``: every parameter of ``model`` (trainable or not), each once.

    A forward hook on every submodule records which ones are called; the parameters *registered
    directly* on those modules are summed, each parameter once (shared ones are not double counted).
    Modules that are defined but never called (as in the released ``Dui1``) are excluded. The pass is
    run in eval mode without gradients, and the training flag is restored, so BN statistics are not
    touched. A parameter used functionally by a module other than its owner, whose owner never runs,
    would be missed.

    Parameters
    ----------
    model : nn.Module
        Any module.
    example_input : Tensor, optional
        An input accepted by ``model``, e.g. ``(1, 12, 1000)``; ``None`` counts every parameter.

    Returns
    -------
    int
        The count.
    """
    if example_input is None:
        return sum(p.numel() for p in model.parameters())
    ran: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda module, args, out: ran.append(module)) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    seen: set[int] = set()
    total = 0
    for module in ran:
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total
