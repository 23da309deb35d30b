"""NOCS predictor, pose/size estimator and reconstructor: official counts, rotations, NOCS head selection."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanpose_core.models.attention import AttnConfig
from cleanpose_core.models.heads import (NOCSConfig, NOCSPredictor, PoseSizeEstimator, Reconstructor,
                                         ortho6d_to_matrix)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_head_parameter_counts_match_official():
    assert n_params(NOCSPredictor(NOCSConfig(), 256, 6)) == 2_304_896
    assert n_params(NOCSPredictor(NOCSConfig(), 256, 10)) == 2_698_880
    est = PoseSizeEstimator(256)
    assert n_params(est) == 2_043_276
    assert n_params(est.rotation_estimator) == 395_526 and n_params(est.translation_estimator) == 394_755
    rec = Reconstructor(256)
    assert n_params(rec) == 713_886 and n_params(rec.shape_decoder) == 540_702


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=6, max_size=6))
def test_ortho6d_gives_orthonormal_rotations_with_det_plus_one(v):
    r6 = torch.tensor([v], dtype=torch.float64)
    if torch.linalg.cross(r6[:, :3], r6[:, 3:]).norm() < 1e-3 or r6[:, 3:].norm() < 1e-3:
        return  # degenerate input (parallel or zero vectors): no rotation is defined
    rot = ortho6d_to_matrix(r6)
    torch.testing.assert_close(rot[0] @ rot[0].T, torch.eye(3, dtype=torch.float64))
    assert abs(torch.linalg.det(rot[0]).item() - 1.0) < 1e-9
    torch.testing.assert_close(rot[0, :, 1], r6[0, 3:] / r6[0, 3:].norm())  # y axis is the anchor


def test_estimator_outputs_are_rotations():
    torch.manual_seed(0)
    rot, t, s = PoseSizeEstimator(32, 64)(torch.randn(4, 9, 3), torch.randn(4, 9, 3), torch.randn(4, 9, 32))
    assert rot.shape == (4, 3, 3) and t.shape == (4, 3) and s.shape == (4, 3)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(4), atol=1e-5, rtol=0)


def test_nocs_predictor_selects_the_category_head_like_the_full_computation():
    torch.manual_seed(0)
    cfg = NOCSConfig(bins_num=8, hidden=16, attn=AttnConfig(1, 32, 4, 32))
    head = NOCSPredictor(cfg, 32, 3).eval()
    feat, cls = torch.randn(4, 5, 32), torch.tensor([2, 0, 1, 2])
    nocs = head(feat, cls)
    # Official formulation: all cat_num * 3 * bins logits, then the row block of each sample's category.
    x = head.atten_mlp(head.attn(head.nocs_mlp(feat)))
    logits = head.head(x).view(4, 5, 3, 3, 8)[torch.arange(4), :, cls]  # (B, K, 3, bins)
    ref = torch.softmax(logits, dim=3) @ ((torch.arange(8) + 0.5) / 8 - 0.5)
    torch.testing.assert_close(nocs, ref)
    assert nocs.abs().max() < 0.5


def test_reconstruction_is_keypoint_major_around_the_keypoints():
    torch.manual_seed(0)
    rec = Reconstructor(16, pts_per_kpt=4, hidden=32)
    kpt = torch.randn(2, 3, 3)
    recon, delta = rec(kpt, torch.randn(2, 3, 16))
    assert recon.shape == delta.shape == (2, 12, 3)
    torch.testing.assert_close(recon - delta, kpt.repeat_interleave(4, dim=1))
