"""Compiled CPU loops (numba) for the PointNet++ index ops: furthest point sampling, multi-scale ball query
and three nearest neighbours, with the official CUDA kernels' rules (the ops' modules document them).

Why hand-written loops: these ops are searches with early exits and running minima, which vectorised PyTorch
or numpy can only express as full (B, S, N) distance tables plus a sort, `topk` or `nonzero` over them. The
kernels' own loops, compiled, touch each pair once and stop at `nsample` hits: at the lite network's sizes
(3 objects, 512 points) a level's geometry takes a quarter of the vectorised time.

Every loop computes a squared distance exactly as the vectorised paths do (coordinate differences squared
and summed x + y, then + z, in the points' dtype, no fused multiply-add), so the outputs are identical
(tests compare them), with one exception: on exactly equal distances (duplicate points) `three_nn` puts the
earlier index first, as the CUDA kernel does, where `topk`'s order is unspecified; the interpolation weights
are the same, only their summation order changes (6e-5 on a score of scripts/check_outputs_unchanged.py's
depth-tabletop variant, whose clouds repeat points).

numba is optional: without it (`AVAILABLE` False) the ops take their vectorised paths. Inputs must be finite:
callers fall back to the vectorised paths otherwise (NaN compares differently from numpy's `argmax`).
Compiled code is cached on disk (`cache=True`); the first call of a process without a cache compiles (about a
second per function). `CLEANPOSE_COMPILED_OPS=0` in the environment turns the loops off (the vectorised paths
run), e.g. to compare the two.
"""

from __future__ import annotations

import os

import numpy as np
import torch

try:
    import numba
except ImportError:  # optional: the ops' vectorised paths run instead
    numba = None

AVAILABLE = numba is not None and os.environ.get("CLEANPOSE_COMPILED_OPS", "1") != "0"

__all__ = ["AVAILABLE", "as_numpy", "compiled_inputs", "usable", "furthest_point_sample", "ball_queries",
           "three_nn"]


def _jit(fn):
    if not AVAILABLE:
        return fn
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location (read-only install and home): compile in each process
        return numba.njit(nogil=True)(fn)


@_jit
def _fps(xyz, npoint, skip, start, near_origin_sq, init_dist):  # pragma: no cover (compiled)
    b, n, _ = xyz.shape
    out = np.zeros((b, npoint), np.int64)
    dist = np.empty(n, xyz.dtype)
    for i in range(b):
        for k in range(n):
            x, y, z = xyz[i, k, 0], xyz[i, k, 1], xyz[i, k, 2]
            # skipped points keep a running minimum of -1: they never win, and an all-skipped cloud picks 0
            dist[k] = -1.0 if (skip and x * x + y * y + z * z <= near_origin_sq) else init_dist
        far = start[i]
        out[i, 0] = far
        for j in range(1, npoint):
            cx, cy, cz = xyz[i, far, 0], xyz[i, far, 1], xyz[i, far, 2]
            best, best_k = -np.inf, 0
            for k in range(n):
                dx, dy, dz = xyz[i, k, 0] - cx, xyz[i, k, 1] - cy, xyz[i, k, 2] - cz
                d = dx * dx + dy * dy
                d = d + dz * dz
                if d < dist[k]:
                    dist[k] = d
                if dist[k] > best:  # first index on ties, as numpy's argmax
                    best, best_k = dist[k], k
            far = best_k
            out[i, j] = far
    return out


@_jit
def _ball_queries(xyz, centres, radii_sq, nsamples, inclusive, out):  # pragma: no cover (compiled)
    b, s, _ = centres.shape
    n = xyz.shape[1]
    scales = radii_sq.shape[0]
    widest = radii_sq.max()
    count = np.zeros(scales, np.int64)
    offset = np.zeros(scales + 1, np.int64)  # scale q's slots are out[..., offset[q]:offset[q + 1]]
    for q in range(scales):
        offset[q + 1] = offset[q] + nsamples[q]
    for i in range(b):
        for j in range(s):
            cx, cy, cz = centres[i, j, 0], centres[i, j, 1], centres[i, j, 2]
            count[:] = 0
            full = 0
            for k in range(n):  # index order: each scale keeps its first nsample hits
                dx, dy, dz = cx - xyz[i, k, 0], cy - xyz[i, k, 1], cz - xyz[i, k, 2]
                d = dx * dx + dy * dy
                d = d + dz * dz
                if not ((d <= widest) if inclusive else (d < widest)):
                    continue
                for q in range(scales):
                    if count[q] < nsamples[q] and ((d <= radii_sq[q]) if inclusive else (d < radii_sq[q])):
                        if count[q] == 0:  # empty slots repeat the first hit
                            out[i, j, offset[q]:offset[q + 1]] = k
                        out[i, j, offset[q] + count[q]] = k
                        count[q] += 1
                        if count[q] == nsamples[q]:
                            full += 1
                if full == scales:
                    break
    return out


@_jit
def _three_nn(unknown, known, dist, idx):  # pragma: no cover (compiled)
    b, n, _ = unknown.shape
    m = known.shape[1]
    for i in range(b):
        for j in range(n):
            ux, uy, uz = unknown[i, j, 0], unknown[i, j, 1], unknown[i, j, 2]
            d1 = d2 = d3 = np.inf
            i1 = i2 = i3 = 0
            for k in range(m):  # the kernel's running best three; ties keep the earlier point
                dx, dy, dz = ux - known[i, k, 0], uy - known[i, k, 1], uz - known[i, k, 2]
                d = dx * dx + dy * dy
                d = d + dz * dz
                if d < d1:
                    d3, i3, d2, i2, d1, i1 = d2, i2, d1, i1, d, k
                elif d < d2:
                    d3, i3, d2, i2 = d2, i2, d, k
                elif d < d3:
                    d3, i3 = d, k
            dist[i, j, 0], dist[i, j, 1], dist[i, j, 2] = d1, d2, d3
            idx[i, j, 0], idx[i, j, 1], idx[i, j, 2] = i1, i2, i3
    return dist, idx


def as_numpy(x: torch.Tensor) -> np.ndarray:
    """A CPU tensor's points as numpy, half precision widened to float32 (numpy has no bfloat16; the CUDA
    kernels take float32 too)."""
    x = x.detach()
    return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).numpy()


def compiled_inputs(*tensors: torch.Tensor) -> tuple[np.ndarray, ...] | None:
    """The tensors as numpy arrays when the compiled loops apply to them (numba installed, CPU tensors of one
    dtype after widening, finite), else None: the op then takes its vectorised path."""
    if not AVAILABLE or any(t.device.type != "cpu" for t in tensors):
        return None
    arrays = tuple(as_numpy(t) for t in tensors)
    return arrays if usable(*arrays) and len({a.dtype for a in arrays}) == 1 else None


def usable(*arrays: np.ndarray) -> bool:
    """The compiled loops apply: numba is installed and every array is finite float32 or float64 (the dtypes
    the loops are compiled for; float16 goes the vectorised way)."""
    return AVAILABLE and all(a.dtype in (np.float32, np.float64) and np.isfinite(a).all() for a in arrays)


def furthest_point_sample(xyz: np.ndarray, npoint: int, skip: bool, start: np.ndarray | None,
                          near_origin_sq: float, init_dist: float) -> np.ndarray:
    """(B, N, 3) -> (B, npoint) int64; the rules of `ops.furthest_point_sample`."""
    xyz = np.ascontiguousarray(xyz)
    start = np.zeros(xyz.shape[0], np.int64) if start is None else np.ascontiguousarray(start, np.int64)
    return _fps(xyz, npoint, skip, start, xyz.dtype.type(near_origin_sq), xyz.dtype.type(init_dist))


def ball_queries(xyz: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray, nsamples: list[int],
                 inclusive: bool) -> list[np.ndarray]:
    """Points (B, N, 3), centres (B, S, 3), squared radii (Q,) in the points' dtype -> per scale
    (B, S, nsample) int64; the rules of `ops.ball_query`."""
    b, s = centres.shape[:2]
    counts = np.asarray(nsamples, np.int64)
    out = np.zeros((b, s, int(counts.sum())), np.int64)  # a centre without hits keeps index 0
    _ball_queries(np.ascontiguousarray(xyz), np.ascontiguousarray(centres),
                  np.ascontiguousarray(radii_sq, xyz.dtype), counts, inclusive, out)
    return np.split(out, np.cumsum(counts)[:-1], axis=2)


def three_nn(unknown: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """unknown (B, n, 3), known (B, m, 3) -> squared distances (B, n, 3) ascending (inf where m < 3) and
    indices (B, n, 3) int64 (0 where m < 3); the rules of `ops.three_nn`."""
    b, n = unknown.shape[:2]
    dist = np.empty((b, n, 3), unknown.dtype)
    idx = np.empty((b, n, 3), np.int64)
    return _three_nn(np.ascontiguousarray(unknown), np.ascontiguousarray(known), dist, idx)
