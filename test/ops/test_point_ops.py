"""Point ops: the fast paths against their slow reference twins (brute force) on CPU, plus edge cases."""

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanpose_core.ops.ball_query import (ball_queries_from_sqdist, ball_query, ball_query_from_sqdist,
                                             ball_query_naive)
from cleanpose_core.ops.furthest_point_sample import (NEAR_ORIGIN_SQ, furthest_point_sample,
                                                      furthest_point_sample_naive)
from cleanpose_core.ops.grouping import (gather_points, gather_points_naive, group_points, group_points_naive,
                                         index_points)
from cleanpose_core.ops.knn import knn, knn_naive, square_distance
from cleanpose_core.ops.three_nn import (inverse_distance_weights, three_interpolate, three_interpolate_naive,
                                         three_nn, three_nn_naive)

# the package re-exports the function under the module's name, so fetch the module itself
fps_mod = importlib.import_module("cleanpose_core.ops.furthest_point_sample")


def cloud(b, n, seed, scale=0.1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, n, 3, generator=g, dtype=dtype) - 0.5) * 2 * scale


def cloud_with_origin_cluster(b, n, seed):
    """Points within 3 cm of the origin (|p|^2 <= 9e-4 < 1e-3) mixed into a 10 cm cloud."""
    xyz = cloud(b, n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    near = torch.rand(b, n, generator=g) < 0.3
    xyz[near] = xyz[near] * 0.17  # |p| <= 0.1*sqrt(3)*0.17 < 0.0295 m
    return xyz


# ------------------------------------------------------------------------------------------------ FPS
@pytest.mark.parametrize("seed", [0, 1])
def test_fps_fast_path_matches_kernel_loop_reference(seed):
    xyz = cloud_with_origin_cluster(2, 120, seed)
    assert torch.equal(furthest_point_sample(xyz, 40), furthest_point_sample_naive(xyz, 40))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 60), npoint=st.integers(1, 70), seed=st.integers(0, 10_000), skip=st.booleans())
def test_fps_matches_reference_for_any_size(n, npoint, seed, skip):
    xyz = cloud_with_origin_cluster(2, n, seed)
    fast = furthest_point_sample(xyz, npoint, skip_near_origin=skip)
    assert fast.shape == (2, npoint) and fast.dtype == torch.int64
    assert torch.equal(fast, furthest_point_sample_naive(xyz, npoint, skip_near_origin=skip))


def test_fps_torch_loop_equals_numpy_loop():
    """The loop used for CUDA tensors without the kernel gives the CPU path's indices."""
    xyz = cloud_with_origin_cluster(3, 300, 5).float()
    ref = furthest_point_sample(xyz, 64)
    assert torch.equal(fps_mod._fps_torch(xyz, 64, True, None), ref)
    start = torch.tensor([3, 0, 299])
    assert torch.equal(
        fps_mod._fps_torch(xyz, 64, False, start), furthest_point_sample(xyz, 64, False, start)
    )


def test_fps_never_picks_near_origin_points_except_first_centre():
    xyz = cloud_with_origin_cluster(4, 500, 7).float()
    near = xyz.square().sum(-1) <= NEAR_ORIGIN_SQ
    assert near.sum() > 50
    xyz[:, 0] = 0.0  # index 0 at the origin: still the first centre, as the kernel does
    idx = furthest_point_sample(xyz, 256)
    assert (idx[:, 0] == 0).all()
    picked_near = torch.gather(near, 1, idx[:, 1:])
    assert not picked_near.any()


def test_fps_without_skip_starts_where_told_and_spreads_out():
    xyz = cloud(2, 200, 3)
    start = torch.tensor([17, 150])
    idx = furthest_point_sample(xyz, 50, skip_near_origin=False, start_idx=start)
    assert torch.equal(idx[:, 0], start)
    assert all(len(set(row.tolist())) == 50 for row in idx)  # distinct while points remain
    assert torch.equal(idx, furthest_point_sample_naive(xyz, 50, False, start))


def test_fps_all_points_near_origin_falls_back_to_index_zero():
    xyz = cloud(1, 20, 0) * 0.1
    assert torch.equal(furthest_point_sample(xyz, 5), torch.zeros(1, 5, dtype=torch.long))


def test_fps_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        furthest_point_sample(torch.zeros(2, 10), 4)
    with pytest.raises(ValueError, match="start_idx"):
        furthest_point_sample(torch.zeros(2, 10, 3), 4, start_idx=torch.tensor([0, 10]))


# ------------------------------------------------------------------------------------------ ball query
@pytest.mark.parametrize("radius,nsample", [(0.02, 8), (0.05, 16), (0.3, 5)])
def test_ball_query_matches_reference(radius, nsample):
    xyz = cloud(2, 150, 11)
    centres = xyz[:, :40] + 0.01
    fast = ball_query(radius, nsample, xyz, centres)
    assert fast.dtype == torch.int64 and fast.shape == (2, 40, nsample)
    assert torch.equal(fast, ball_query_naive(radius, nsample, xyz, centres))


def test_ball_query_fill_rule_and_no_hit():
    xyz = torch.tensor([[[5.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0]]])
    centres = torch.tensor([[[0.0, 0, 0], [9.0, 9, 9]]])
    out = ball_query(0.25, 4, xyz, centres)
    assert out[0, 0].tolist() == [1, 2, 1, 1]  # hits in index order, then repeats of the first hit
    assert out[0, 1].tolist() == [0, 0, 0, 0]  # no hit: index 0 everywhere


def test_ball_query_radius_boundary_strict_vs_inclusive():
    # distances exactly representable: d^2 = 0.25 = r^2 for r = 0.5
    xyz = torch.tensor([[[0.5, 0, 0], [0.25, 0, 0], [0, 0.5, 0], [0, 0, 0.75]]])
    centre = torch.zeros(1, 1, 3)
    assert ball_query(0.5, 4, xyz, centre)[0, 0].tolist() == [1, 1, 1, 1]
    assert ball_query(0.5, 4, xyz, centre, inclusive=True)[0, 0].tolist() == [0, 1, 2, 0]
    assert torch.equal(ball_query(0.5, 4, xyz, centre, inclusive=True),
                       ball_query_naive(0.5, 4, xyz, centre, inclusive=True))


def test_ball_query_shared_distances_equal_separate_queries():
    xyz = cloud(2, 200, 2).float()
    centres = xyz[:, ::4]
    d2 = square_distance(centres, xyz)
    for r, k in [(0.02, 16), (0.04, 32)]:
        assert torch.equal(ball_query_from_sqdist(d2, r, k), ball_query(r, k, xyz, centres))
    # Several scales from one hit search: each equals its own reference query (larger radius first, too).
    radii, nsamples = (0.04, 0.01, 0.02), (32, 8, 16)
    for inclusive in (False, True):
        scales = ball_queries_from_sqdist(d2, radii, nsamples, inclusive)
        for out, r, k in zip(scales, radii, nsamples):
            assert torch.equal(out, ball_query_naive(r, k, xyz, centres, inclusive))


# ----------------------------------------------------------------------------------------------- kNN
def test_knn_matches_reference_and_is_sorted():
    xyz, q = cloud(2, 100, 4), cloud(2, 20, 5)
    d, i = knn(7, xyz, q)
    dn, iN = knn_naive(7, xyz, q)
    assert torch.equal(i, iN) and torch.allclose(d, dn)
    assert (d[..., 1:] >= d[..., :-1]).all()


def test_square_distance_is_exact_difference_form():
    a, b = cloud(1, 5, 0), cloud(1, 6, 1)
    ref = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
    assert torch.allclose(square_distance(a, b), ref, atol=0, rtol=1e-15)
    assert (square_distance(a, a).diagonal(dim1=1, dim2=2) == 0).all()


# ------------------------------------------------------------------------------------------- grouping
def test_gather_and_group_match_references_and_channel_last_gather():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 30, generator=g)
    idx2 = torch.randint(0, 30, (2, 12), generator=g)
    idx3 = torch.randint(0, 30, (2, 6, 4), generator=g)
    assert torch.equal(gather_points(feats, idx2), gather_points_naive(feats, idx2))
    assert torch.equal(group_points(feats, idx3), group_points_naive(feats, idx3))
    pts = feats.transpose(1, 2)
    assert torch.equal(index_points(pts, idx3), group_points(feats, idx3).permute(0, 2, 3, 1))


def test_group_points_gradient_scatters_back():
    feats = torch.randn(1, 3, 10, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 10, (1, 4, 5))
    assert torch.autograd.gradcheck(lambda f: group_points(f, idx), (feats,))


def test_grouping_rejects_float_indices():
    with pytest.raises(ValueError, match="integer"):
        group_points(torch.zeros(1, 2, 5), torch.zeros(1, 2, 2))


# --------------------------------------------------------------------------------------------- three-NN
def test_three_nn_matches_reference_with_euclidean_distances():
    unknown, known = cloud(2, 40, 8), cloud(2, 15, 9)
    d, i = three_nn(unknown, known)
    dn, iN = three_nn_naive(unknown, known)
    assert torch.equal(i, iN) and torch.allclose(d, dn)
    assert torch.allclose(d[..., 0], square_distance(unknown, known).min(-1).values.sqrt())


def test_three_nn_with_fewer_than_three_known_points_gives_zero_weight_to_missing():
    unknown, known = cloud(1, 6, 1), cloud(1, 2, 2)
    d, i = three_nn(unknown, known)
    dn, iN = three_nn_naive(unknown, known)
    assert torch.equal(i, iN) and torch.equal(d, dn)
    w = inverse_distance_weights(d)
    assert (w[..., 2] == 0).all() and torch.allclose(w.sum(-1), torch.ones(1, 6, dtype=w.dtype))


def test_three_interpolate_matches_reference_and_reproduces_known_features():
    unknown, known = cloud(2, 25, 3), cloud(2, 12, 4)
    feats = torch.randn(2, 6, 12, dtype=torch.float64)
    d, i = three_nn(unknown, known)
    w = inverse_distance_weights(d)
    assert torch.allclose(w.sum(-1), torch.ones_like(w[..., 0]))
    assert torch.allclose(three_interpolate(feats, i, w), three_interpolate_naive(feats, i, w))
    # at a known point the interpolation returns that point's feature (its weight dominates)
    d0, i0 = three_nn(known, known)
    out = three_interpolate(feats, i0, inverse_distance_weights(d0))
    assert torch.allclose(out, feats, atol=1e-5)  # the other two weights are ~1e-7


def test_three_interpolate_gradcheck():
    feats = torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True)
    w = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 6, (1, 4, 3))
    assert torch.autograd.gradcheck(lambda f, ww: three_interpolate(f, idx, ww), (feats, w))
