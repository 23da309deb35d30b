"""bfloat16 autocast for chosen parts of a network during training (`TrainConfig.bf16`, `bf16_modules`).

A forward pre-hook enters `torch.autocast(..., dtype=torch.bfloat16)` and the forward hook leaves it and casts
floating-point outputs back to float32, so the rest of the network, the losses and the optimiser see float32
tensors as before; the parameters stay float32 (autocast casts per op). Only where the CPU computes bf16
natively is it faster: emulated bf16 costs more than float32, which is why `auto` checks the CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from ..device import bf16_supported

__all__ = ["bf16_autocast", "use_bf16"]


def use_bf16(mode: str, device: torch.device) -> bool:
    """Whether `TrainConfig.bf16` (`on` | `off` | `auto`) means bf16 on `device`; auto: CPUs with native bf16
    only (CUDA keeps float32 unless `on`)."""
    if mode == "auto":
        return device.type == "cpu" and bf16_supported()
    return mode == "on"


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


def bf16_autocast(model: nn.Module, names: list[str]) -> list[str]:
    """Run the forward of `model.<name>` for every name in `names` under bf16 autocast. Names the model has
    no module for are skipped (a teacher when KD is off, another network built by `build_components`): the
    trainer logs the names applied, which this returns."""
    children = dict(model.named_children())
    applied = []
    for name in names:
        module = children.get(name)
        if module is None:
            continue
        contexts: list[torch.autocast] = []

        def enter(_module, _args, contexts=contexts, device=next(module.parameters()).device.type):
            contexts.append(torch.autocast(device, dtype=torch.bfloat16))
            contexts[-1].__enter__()

        def leave(_module, _args, output, contexts=contexts):
            contexts.pop().__exit__(None, None, None)
            return _to_float32(output)

        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)
        applied.append(name)
    return applied
