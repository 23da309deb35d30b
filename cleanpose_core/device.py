"""One rule for turning a configured device name into a torch.device, shared by training and inference."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def check_device_name(name: str | torch.device) -> None:
    """Raise ValueError unless `name` is auto, cpu, cuda or cuda:N (checked without touching any GPU)."""
    name = str(name)
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")


def resolve_device(name: str | torch.device, *, fallback_to_cpu: bool = False) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu', 'cuda' and 'cuda:N' are taken as given.

    A CUDA request on a machine without CUDA either raises ValueError (training: a silent switch to the CPU
    would turn an hour into a day) or, with `fallback_to_cpu`, logs a warning and returns the CPU (inference:
    a robot node should keep running on a machine without a GPU).
    """
    check_device_name(name)
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        if not fallback_to_cpu:
            raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        log.warning("device %s requested but CUDA is not available: using the CPU", name)
        return torch.device("cpu")
    return device


def bf16_supported() -> bool:
    """The CPU computes bfloat16 natively (oneDNN: AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
