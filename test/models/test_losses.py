"""Loss terms against direct formulas and known values; weights, switches and errors."""

import math

import pytest
import torch

from cleanpose_core.models.losses import (LossConfig, build_loss, chamfer_kpt_to_points, diversity_loss,
                                          nocs_loss, pose_loss, recon_loss)


def test_pose_loss_uses_column_norms_and_plain_l2():
    rot = torch.eye(3).unsqueeze(0)
    gt = torch.tensor([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])  # 90 deg about z: two columns differ by sqrt(2)
    loss = pose_loss(rot, torch.zeros(1, 3), torch.ones(1, 3), gt, torch.tensor([[3.0, 4, 0]]),
                     torch.ones(1, 3))
    assert math.isclose(loss.item(), 2 * math.sqrt(2) / 3 + 5.0, rel_tol=1e-6)


def test_diversity_is_zero_for_spread_keypoints_and_counts_close_pairs():
    far = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    assert diversity_loss(far).item() == 0.0
    close = torch.tensor([[[0.0, 0, 0], [0.005, 0, 0], [1, 0, 0]]])  # one pair at half the threshold
    assert math.isclose(diversity_loss(close, 0.01).item(), 2 * 0.5 / 6, rel_tol=1e-5)
    coincident = torch.zeros(1, 4, 3, requires_grad=True)
    diversity_loss(coincident).backward()
    assert torch.isfinite(coincident.grad).all()


def test_nocs_target_is_the_inverse_similarity_transform():
    torch.manual_seed(0)
    rot = torch.linalg.qr(torch.randn(3, 3))[0]
    rot = rot * torch.linalg.det(rot)
    t, s = torch.tensor([0.1, -0.2, 0.7]), torch.tensor([0.2, 0.1, 0.3])
    nocs = torch.rand(1, 8, 3) - 0.5
    kpt = (s.norm() * nocs[0] @ rot.T + t).unsqueeze(0)  # column form: k = ||s|| R q + t
    assert nocs_loss(nocs, kpt, rot[None], t[None], s[None]).item() < 1e-10


def test_object_aware_recon_skips_masked_points_and_empty_samples():
    pts = torch.tensor([[[0.0, 0, 0], [5, 0, 0]], [[1.0, 0, 0], [1, 0, 0]]])
    recon = torch.tensor([[[0.0, 0, 0]], [[0.0, 0, 0]]])
    mask = torch.tensor([[True, False], [False, False]])
    assert recon_loss(pts, recon, mask).item() == 0.0  # outlier ignored, empty sample contributes 0
    assert math.isclose(recon_loss(pts, recon).item(), 0.5 * (2.5 + 1) / 2 + 0.5 * 1 / 2, rel_tol=1e-6)


def test_chamfer_keypoints_to_points():
    kpt = torch.tensor([[[0.0, 0, 1]]])
    pts = torch.tensor([[[0.0, 0, 0], [0, 0, 3]]])
    assert chamfer_kpt_to_points(kpt, pts).item() == 1.0


def make_outputs(b=2, k=6, n=20, kd=True):
    torch.manual_seed(0)
    out = {
        "pred_rotation": torch.eye(3).expand(b, 3, 3),
        "pred_translation": torch.zeros(b, 3),
        "pred_size": torch.ones(b, 3),
        "pred_kpt_3d": torch.randn(b, k, 3),
        "pred_kpt_nocs": torch.zeros(b, k, 3),
        "recon_model": torch.randn(b, 4 * k, 3),
        "recon_delta": torch.randn(b, 4 * k, 3),
    }
    if kd:
        out["distillation_pointnet"], out["distillation_ulip"] = torch.randn(b, 8), torch.randn(b, 8)
    batch = {"pts": torch.randn(b, n, 3), "rotation_label": torch.eye(3).expand(b, 3, 3),
             "translation_label": torch.zeros(b, 3), "size_label": torch.ones(b, 3),
             "pc_mask": torch.ones(b, n, dtype=torch.bool)}
    return out, batch


def test_total_is_the_sum_of_weighted_terms_with_official_defaults():
    out, batch = make_outputs()
    terms = build_loss(LossConfig())(out, batch)
    assert set(terms) == {"loss_all", "loss_pose", "loss_cd", "loss_nocs", "loss_diversity", "loss_recon",
                          "loss_delta", "loss_distillation"}
    torch.testing.assert_close(terms["loss_all"], sum(v for k, v in terms.items() if k != "loss_all"))
    raw = (out["distillation_pointnet"] - out["distillation_ulip"]).norm(dim=1).mean()
    torch.testing.assert_close(terms["loss_distillation"], 0.01 * raw)
    torch.testing.assert_close(
        terms["loss_cd"], 2.0 * chamfer_kpt_to_points(out["pred_kpt_3d"], batch["pts"])
    )


def test_zero_weight_switches_a_term_off_and_missing_inputs_are_named():
    out, batch = make_outputs(kd=False)
    terms = build_loss(LossConfig(distillation=0.0, recon=0.0))(out, batch)
    assert "loss_distillation" not in terms and "loss_recon" not in terms
    with pytest.raises(KeyError, match="distillation"):
        build_loss(LossConfig())(out, batch)
    del batch["pc_mask"]
    with pytest.raises(KeyError, match="pc_mask"):
        build_loss(LossConfig(distillation=0.0))(out, batch)
