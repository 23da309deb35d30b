"""The numba-compiled CPU loops give exactly the vectorised paths' outputs (which the point-op tests check
against the kernels' reference loops), in float32 as the networks run, with ties and several scales."""

import pytest
import torch

from cleanpose_core.ops import cpu_kernels
from cleanpose_core.ops.ball_query import ball_queries, ball_queries_from_sqdist
from cleanpose_core.ops.furthest_point_sample import furthest_point_sample
from cleanpose_core.ops.knn import square_distance
from cleanpose_core.ops.three_nn import three_nn, three_nn_naive

pytestmark = pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="numba is not installed")


def object_cloud(b, n, seed, duplicates=True):
    """float32 points of a 20 cm object 40-60 cm from the camera; a tenth repeated (ties between equal
    points), a few within 3 cm of the origin (the FPS skip rule)."""
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(b, n, 3, generator=g) - 0.5) * 0.2 + torch.tensor([0.0, 0.0, 0.5])
    if duplicates:
        xyz[:, n - n // 10:] = xyz[:, : n // 10]
    xyz[:, 5:8] = 0.01
    return xyz.float()


def vectorised(monkeypatch, fn, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(cpu_kernels, "AVAILABLE", False)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("skip", [True, False])
def test_fps_compiled_equals_numpy_loop(monkeypatch, seed, skip):
    xyz = object_cloud(3, 512, seed)
    start = None if skip else torch.tensor([0, 17, 511])
    fast = furthest_point_sample(xyz, 256, skip_near_origin=skip, start_idx=start)
    assert torch.equal(fast, vectorised(monkeypatch, furthest_point_sample, xyz, 256, skip, start))
    assert len(set(fast[0].tolist())) == 256  # distinct centres: a real sampling, not a constant


def test_fps_all_points_near_origin_picks_index_zero_like_the_numpy_loop(monkeypatch):
    xyz = torch.full((1, 20, 3), 0.001)
    assert torch.equal(furthest_point_sample(xyz, 4), vectorised(monkeypatch, furthest_point_sample, xyz, 4))
    assert furthest_point_sample(xyz, 4).tolist() == [[0, 0, 0, 0]]


@pytest.mark.parametrize("inclusive", [False, True])
def test_multi_scale_ball_query_compiled_equals_shared_distance_path(monkeypatch, inclusive):
    xyz = object_cloud(3, 512, 4)
    centres = xyz[:, ::4]
    radii, nsamples = (0.01, 0.02, 0.08), (8, 16, 32)
    fast = ball_queries(xyz, centres, radii, nsamples, inclusive)
    ref = ball_queries_from_sqdist(square_distance(centres, xyz), radii, nsamples, inclusive)
    assert all(torch.equal(f, r) for f, r in zip(fast, ref))
    assert [f.shape for f in fast] == [(3, 128, k) for k in nsamples]
    # a centre far from every point: no hit, index 0 in every slot (the kernel's zeroed output)
    lonely = ball_queries(xyz, torch.full((3, 1, 3), 5.0), radii, nsamples, inclusive)
    assert all(int(f.abs().sum()) == 0 for f in lonely)


def test_radius_boundary_is_strict_or_inclusive_in_the_compiled_loop():
    xyz = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.25, 0.0, 0.0]]])
    centre = torch.zeros(1, 1, 3)
    assert ball_queries(xyz, centre, (0.5,), (3,), inclusive=False)[0].tolist() == [[[0, 2, 0]]]
    assert ball_queries(xyz, centre, (0.5,), (3,), inclusive=True)[0].tolist() == [[[0, 1, 2]]]


@pytest.mark.parametrize("m", [1, 2, 64])
def test_three_nn_compiled_equals_topk_path(monkeypatch, m):
    known = object_cloud(2, max(m, 10), 6, duplicates=m > 3)[:, :m]
    unknown = object_cloud(2, 256, 7)
    dist, idx = three_nn(unknown, known)
    ref_dist, _ = vectorised(monkeypatch, three_nn, unknown, known)
    assert torch.equal(dist, ref_dist) and dist.dtype == torch.float32
    # equal distances (duplicated known points): the earlier index first, as the CUDA kernel's loop (topk
    # orders ties as it likes)
    assert torch.equal(idx, three_nn_naive(unknown, known)[1])


def test_non_finite_points_take_the_vectorised_path(monkeypatch):
    xyz = object_cloud(1, 64, 8)
    xyz[0, 10] = float("nan")
    assert not cpu_kernels.usable(xyz.numpy())
    ref = vectorised(monkeypatch, furthest_point_sample, xyz, 16)
    assert torch.equal(furthest_point_sample(xyz, 16), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_points_are_searched_in_float32(dtype):
    """Points that reach the ops in half precision (bf16 autocast) are widened, as the CUDA kernels take
    float32: the same indices as the float32 copy of the same points, no crash on bfloat16."""
    xyz = object_cloud(2, 256, 9).to(dtype)
    wide = xyz.float()
    assert torch.equal(furthest_point_sample(xyz, 32), furthest_point_sample(wide, 32))
    assert torch.equal(ball_queries(xyz, xyz[:, :16], (0.05,), (8,))[0],
                       ball_queries(wide, wide[:, :16], (0.05,), (8,))[0])
    assert torch.equal(three_nn(xyz, xyz[:, :40])[1], three_nn(wide, wide[:, :40])[1])


def test_loops_compile_without_a_writable_cache(monkeypatch):
    """A read-only install with a read-only home leaves numba no cache location (it raises at decoration):
    the loops are then compiled in the process, uncached, and give the same indices."""
    import importlib

    import numba

    xyz = object_cloud(2, 128, 10)
    expected = furthest_point_sample(xyz, 16)
    plain_njit = numba.njit

    def njit_without_cache(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return plain_njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit_without_cache)
    try:
        importlib.reload(cpu_kernels)
        assert cpu_kernels.AVAILABLE
        assert torch.equal(furthest_point_sample(xyz, 16), expected)
    finally:
        monkeypatch.undo()
        importlib.reload(cpu_kernels)
