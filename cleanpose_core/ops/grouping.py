"""Gathering features by point index: `gather_points` (one index per output) and `group_points` (k per
output).

Official code: `gather_operation` and `grouping_operation` of pointnet2_ops
(`_ext_src/src/group_points_gpu.cu`, `sampling_gpu.cu`), channel-first (B, C, N) features. The torch path is
one `torch.gather` over the flattened indices; autograd gives the kernels' scatter-add backward.
`index_points` is the channel-last variant (B, N, C) used for coordinates.
"""

from __future__ import annotations

import torch

from ._cuda import cuda_kernels

__all__ = ["gather_points", "group_points", "index_points", "gather_points_naive", "group_points_naive"]


def _check(name: str, features: torch.Tensor, idx: torch.Tensor, idx_dims: int) -> None:
    if features.dim() != 3 or idx.dim() != idx_dims or idx.shape[0] != features.shape[0]:
        raise ValueError(
            f"{name}: expected features (B, C, N) and idx with {idx_dims} dims and the same B, got "
            f"{tuple(features.shape)} and {tuple(idx.shape)}"
        )
    if idx.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}: idx must be an integer tensor, got {idx.dtype}")


def gather_points(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """features (B, C, N) at idx (B, S) -> (B, C, S). Differentiable in `features`."""
    _check("gather_points", features, idx, 2)
    kernels = cuda_kernels(features)
    if kernels is not None:
        return kernels.gather_operation(features.contiguous(), idx.int().contiguous())
    b, c, _ = features.shape
    return torch.gather(features, 2, idx.long().unsqueeze(1).expand(b, c, idx.shape[1]))


def group_points(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """features (B, C, N) at idx (B, S, k) -> (B, C, S, k). Differentiable in `features`."""
    _check("group_points", features, idx, 3)
    kernels = cuda_kernels(features)
    if kernels is not None:
        return kernels.grouping_operation(features.contiguous(), idx.int().contiguous())
    b, c, _ = features.shape
    _, s, k = idx.shape
    flat = idx.long().reshape(b, 1, s * k).expand(b, c, s * k)
    return torch.gather(features, 2, flat).view(b, c, s, k)


def index_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Channel-last gather: points (B, N, C) at idx (B, *shape) -> (B, *shape, C). Differentiable in
    `points`."""
    if points.dim() != 3 or idx.dim() < 2 or idx.shape[0] != points.shape[0]:
        raise ValueError(
            f"index_points: expected points (B, N, C) and idx (B, ...), got {tuple(points.shape)} "
            f"and {tuple(idx.shape)}"
        )
    b, _, c = points.shape
    flat = idx.long().reshape(b, -1, 1).expand(-1, -1, c)
    return torch.gather(points, 1, flat).view(*idx.shape, c)


def gather_points_naive(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Reference twin of `gather_points`: explicit loops over batch and outputs."""
    out = features.new_empty(features.shape[0], features.shape[1], idx.shape[1])
    for b in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            out[b, :, j] = features[b, :, int(idx[b, j])]
    return out


def group_points_naive(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Reference twin of `group_points`: explicit loops over batch, centres and slots."""
    b_, s_, k_ = idx.shape
    out = features.new_empty(b_, features.shape[1], s_, k_)
    for b in range(b_):
        for j in range(s_):
            for k in range(k_):
                out[b, :, j, k] = features[b, :, int(idx[b, j, k])]
    return out
