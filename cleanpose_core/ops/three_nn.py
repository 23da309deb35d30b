"""Three-nearest-neighbour search and inverse-distance interpolation (PointNet++ feature propagation).

Official code: `three_nn_kernel` / `three_interpolate_kernel` in pointnet2_ops
`_ext_src/src/interpolate_gpu.cu` and `PointnetFPModule` in `pointnet2_modules.py`:
- `three_nn` returns the Euclidean distances (the kernel finds squared ones, the Python wrapper takes the
square
  root) and indices of the 3 nearest known points, nearest first (lower index first on ties);
- weights are (1 / (d + 1e-8)) normalised to sum 1 (`inverse_distance_weights`);
- `three_interpolate` is the weighted sum of the 3 known features.
On CPU the kernel's loop compiled by numba (`cpu_kernels`) when installed, else distances and `topk`.
With fewer than 3 known points the kernel leaves the missing neighbours at index 0 with an infinite distance
(its float32 1e40 initial value), hence zero weight; we do the same.
"""

from __future__ import annotations

import torch

from . import cpu_kernels
from ._cuda import cuda_kernels
from .knn import square_distance

__all__ = ["three_nn", "three_interpolate", "inverse_distance_weights", "three_nn_naive",
           "three_interpolate_naive"]


def three_nn(unknown: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3 nearest `known` (B, m, 3) points of each `unknown` (B, n, 3) point (metres).

    Returns:
        dist (B, n, 3) Euclidean distances (m), ascending; idx (B, n, 3) int64 indices into m.
        Not differentiable (the official op has no backward either).
    """
    kernels = cuda_kernels(unknown, known)
    if kernels is not None:
        dist, idx = kernels.three_nn(unknown.contiguous(), known.contiguous())
        return dist, idx.long()
    m = known.shape[1]
    if m < 1:
        raise ValueError("three_nn: `known` has no points")
    compiled = cpu_kernels.compiled_inputs(unknown, known)
    if compiled is not None:
        d2, idx = cpu_kernels.three_nn(*compiled)
        return torch.from_numpy(d2).sqrt().to(unknown.dtype), torch.from_numpy(idx)
    d2 = square_distance(unknown.detach(), known.detach())
    if m >= 3:
        d2, idx = d2.topk(3, dim=-1, largest=False, sorted=True)
    else:
        d2, idx = d2.sort(dim=-1)
        pad = 3 - m
        d2 = torch.cat([d2, d2.new_full((*d2.shape[:2], pad), float("inf"))], dim=-1)
        idx = torch.cat([idx, idx.new_zeros((*idx.shape[:2], pad))], dim=-1)
    return d2.sqrt(), idx


def inverse_distance_weights(dist: torch.Tensor) -> torch.Tensor:
    """Interpolation weights (B, n, 3) from distances (B, n, 3): (1/(d + 1e-8)) normalised to sum 1."""
    recip = 1.0 / (dist + 1e-8)
    return recip / recip.sum(dim=-1, keepdim=True)


def three_interpolate(features: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted sum of 3 known features: features (B, C, m), idx/weight (B, n, 3) -> (B, C, n).

    Differentiable in `features` and `weight`.
    """
    if features.dim() != 3 or idx.shape != weight.shape or idx.dim() != 3 or idx.shape[-1] != 3:
        raise ValueError(f"three_interpolate: expected features (B, C, m), idx and weight (B, n, 3), got "
                         f"{tuple(features.shape)}, {tuple(idx.shape)}, {tuple(weight.shape)}")
    kernels = cuda_kernels(features, weight)
    if kernels is not None:
        return kernels.three_interpolate(features.contiguous(), idx.int().contiguous(), weight.contiguous())
    b, c, _ = features.shape
    n = idx.shape[1]
    picked = torch.gather(features, 2, idx.long().reshape(b, 1, n * 3).expand(b, c, n * 3)).view(b, c, n, 3)
    return (picked * weight.unsqueeze(1)).sum(dim=-1)


def three_nn_naive(unknown: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference twin of `three_nn`: the kernel's running best-3 update, point by point (slow)."""
    b_, n_, _ = unknown.shape
    dist = torch.full((b_, n_, 3), float("inf"), dtype=unknown.dtype)
    idx = torch.zeros(b_, n_, 3, dtype=torch.long)
    for b in range(b_):
        for j in range(n_):
            best = [(float("inf"), 0)] * 3
            for k in range(known.shape[1]):
                diff = known[b, k] - unknown[b, j]
                d = float(diff[0] * diff[0] + diff[1] * diff[1] + diff[2] * diff[2])
                if d < best[0][0]:
                    best = [(d, k), best[0], best[1]]
                elif d < best[1][0]:
                    best = [best[0], (d, k), best[1]]
                elif d < best[2][0]:
                    best = [best[0], best[1], (d, k)]
            for slot, (d, k) in enumerate(best):
                dist[b, j, slot] = d ** 0.5
                idx[b, j, slot] = k
    return dist, idx


def three_interpolate_naive(features: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Reference twin of `three_interpolate`: explicit loops over batch, outputs and neighbours."""
    b_, c_, _ = features.shape
    n_ = idx.shape[1]
    out = features.new_zeros(b_, c_, n_)
    for b in range(b_):
        for j in range(n_):
            for k in range(3):
                out[b, :, j] += weight[b, j, k] * features[b, :, int(idx[b, j, k])]
    return out
