"""Pairwise squared distances and k nearest neighbours.

Official code: `knn_point` / `square_distance` in ULIP-2's `models/pointbert/dvae.py` (PointBERT grouping:
`topk` over squared distances, unsorted). The official `square_distance` uses the expansion
|a|^2 + |b|^2 - 2 a.b, which loses precision for nearby points (and can go slightly negative); we compute
(a - b)^2 per coordinate, summed x, y, z as the CUDA kernels do. Neighbour order does not matter to PointBERT
(its group encoder max-pools), so `knn` returns neighbours sorted by distance for reproducibility.
"""

from __future__ import annotations

import torch

__all__ = ["square_distance", "knn", "knn_naive"]


def _check_pair(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 3 or b.dim() != 3 or a.shape[-1] != 3 or b.shape[-1] != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"{name}: expected (B, S, 3) and (B, N, 3) point sets, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")


def square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (B, S, N) between src (B, S, 3) and dst (B, N, 3), in m^2.

    Differentiable. Memory: three (B, S, N) temporaries, no (B, S, N, 3) one.
    """
    _check_pair("square_distance", src, dst)
    d = (src[:, :, None, 0] - dst[:, None, :, 0]).square()
    for k in (1, 2):
        d = d + (src[:, :, None, k] - dst[:, None, :, k]).square()
    return d


def knn(k: int, xyz: torch.Tensor, new_xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest points of xyz (B, N, 3) to each query of new_xyz (B, S, 3).

    Returns:
        sqdist (B, S, k) squared distances in m^2, ascending; idx (B, S, k) int64 indices into N.
    """
    _check_pair("knn", new_xyz, xyz)
    if not 1 <= k <= xyz.shape[1]:
        raise ValueError(f"knn: k={k} must lie in [1, N={xyz.shape[1]}]")
    return square_distance(new_xyz, xyz).topk(k, dim=-1, largest=False, sorted=True)


def knn_naive(k: int, xyz: torch.Tensor, new_xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference twin of `knn`: per query, a stable full sort of the distances to every point."""
    _check_pair("knn", new_xyz, xyz)
    dists, idxs = [], []
    for b in range(xyz.shape[0]):
        rows_d, rows_i = [], []
        for q in new_xyz[b]:
            d = ((xyz[b] - q) ** 2).sum(-1)
            order = torch.sort(d, stable=True).indices[:k]
            rows_d.append(d[order])
            rows_i.append(order)
        dists.append(torch.stack(rows_d))
        idxs.append(torch.stack(rows_i))
    return torch.stack(dists), torch.stack(idxs)
