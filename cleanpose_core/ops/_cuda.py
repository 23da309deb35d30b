"""Optional CUDA kernels of the official PointNet++ ops (the `pointnet2_ops` package).

CleanPose and AG-Pose compile Erik Wijmans' `pointnet2_ops` CUDA extension. It is not on PyPI and needs a CUDA
toolkit to build, so it is optional here: every op in this package uses it when it is importable *and* the
input is a CUDA tensor, and otherwise runs its pure-PyTorch path, which reproduces the kernels' semantics.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch


@functools.lru_cache(maxsize=1)
def _pointnet2_utils() -> ModuleType | None:
    try:
        from pointnet2_ops import pointnet2_utils  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a build without kernels for this GPU: fall back to torch
        return None
    return pointnet2_utils


def cuda_kernels(*tensors: torch.Tensor) -> ModuleType | None:
    """`pointnet2_ops.pointnet2_utils` if it is importable and every tensor is a float32 CUDA tensor, else
    None."""
    if not all(t.is_cuda and t.dtype == torch.float32 for t in tensors):
        return None
    return _pointnet2_utils()
