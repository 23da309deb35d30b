"""Every loss term of the official CleanPose code, with its default weight; each term switchable.

Official code: `Loss` in [CP model/Net.py] and [CP model/losses.py], weights from
[CP config/REAL/camera_real.yaml]; architecture-facts §3. Everything is in the camera frame (metres) with the
dataset's points and ground truth, and the predictions mapped back by the network:

| key | weight | term |
|---|---|---|
| pose | 0.3 | mean_b[ mean_j ||R_hat[:, j] - R[:, j]|| + ||t_hat - t|| + ||s_hat - s|| ] (L2 norms, not
squared) |
| cd | 2 | one-sided keypoint -> point Chamfer, all N points: mean_{b,k} min_n ||p_n - k_k|| |
| nocs | 2 | SmoothL1(beta 0.1) between predicted keypoint NOCS and R^T (k - t) / ||s||, summed over xyz |
| diversity | 10 | mean_b 1/(K(K-1)) sum_{i != j} max(0, 1 - d_ij / th), th = 0.01 m |
| recon | 15 | symmetric Chamfer points <-> reconstruction, over `pc_mask` points when obj_aware |
| delta | 1 | mean ||delta|| of the reconstruction offsets (augmented frame) |
| distillation | 0.01 | mean_b ||z_b - teacher_b|| (L2 norm, not squared) |

The paper's text differs (weights, L_div form, NOCS target transposed, no recon/delta); see architecture-facts
§7.1 and the comments in config/model/cleanpose_paper.yaml. A weight of 0 turns a term off (it is then neither
computed nor reported). Returned values are the *weighted* terms, as the official code logs them, plus their
sum under `loss_all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.nn import functional as F

__all__ = ["LossConfig", "CleanPoseLoss", "build_loss", "TOTAL_KEY", "pose_loss", "chamfer_kpt_to_points",
           "nocs_loss", "diversity_loss", "recon_loss", "delta_loss", "distillation_loss"]

TOTAL_KEY = "loss_all"


@dataclass
class LossConfig:
    """Loss weights (official defaults) and the few constants of the terms."""

    pose: float = 0.3
    cd: float = 2.0
    nocs: float = 2.0
    diversity: float = 10.0
    diversity_th: float = 0.01  # metres: keypoint pairs closer than this are pushed apart
    recon: float = 15.0
    recon_obj_aware: bool = True  # NOCS: Chamfer over `pc_mask` inliers only; HouseCat6D: false (all points)
    delta: float = 1.0
    distillation: float = 0.01
    nocs_beta: float = 0.1  # SmoothL1 transition point

    def validate(self) -> None:
        for key in ("pose", "cd", "nocs", "diversity", "recon", "delta", "distillation"):
            if getattr(self, key) < 0:
                raise ValueError(f"loss weight {key} must be >= 0, got {getattr(self, key)}")
        if self.diversity_th <= 0 or self.nocs_beta <= 0:
            raise ValueError("diversity_th and nocs_beta must be > 0")


def pose_loss(rot: torch.Tensor, trans: torch.Tensor, size: torch.Tensor, gt_rot: torch.Tensor,
              gt_trans: torch.Tensor, gt_size: torch.Tensor) -> torch.Tensor:
    """rot (B, 3, 3), trans (B, 3), size (B, 3) and their ground truth -> scalar."""
    r = (rot - gt_rot).norm(dim=1).mean(dim=1)  # mean over the three column norms
    return (r + (trans - gt_trans).norm(dim=1) + (size - gt_size).norm(dim=1)).mean()


def chamfer_kpt_to_points(kpt: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """kpt (B, K, 3), pts (B, N, 3) -> mean over b, k of the distance to the nearest point."""
    return torch.cdist(kpt, pts).min(dim=2).values.mean()


def nocs_loss(kpt_nocs: torch.Tensor, kpt: torch.Tensor, gt_rot: torch.Tensor, gt_trans: torch.Tensor,
              gt_size: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Predicted keypoint NOCS (B, K, 3) against R^T (kpt - t) / ||s|| of the predicted keypoints (B, K,
    3)."""
    target = ((kpt - gt_trans.unsqueeze(1)) / (gt_size.norm(dim=1).view(-1, 1, 1) + 1e-8)) @ gt_rot
    return F.smooth_l1_loss(kpt_nocs, target, beta=beta, reduction="none").sum(dim=2).mean()


def diversity_loss(kpt: torch.Tensor, th: float = 0.01) -> torch.Tensor:
    """kpt (B, K, 3) metres -> mean over b and the K(K-1) ordered pairs of max(0, 1 - d_ij / th)."""
    k = kpt.shape[1]
    if k < 2:
        return kpt.new_zeros(())
    d2 = (kpt.unsqueeze(2) - kpt.unsqueeze(1)).square().sum(dim=3)
    eye = torch.eye(k, device=kpt.device, dtype=kpt.dtype)
    # The diagonal gets distance 1 (the official "+1"), which clamps to zero; the floor keeps the sqrt's
    # gradient finite for coincident keypoints.
    d = (d2 + eye).clamp_min(1e-12).sqrt()
    return (1.0 - d / th).clamp_min(0.0).sum(dim=(1, 2)).div(k * (k - 1)).mean()


def recon_loss(pts: torch.Tensor, recon: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric Chamfer, 0.5 mean_p min_r + 0.5 mean_r min_p, between pts (B, N, 3) and recon (B, R, 3).

    With `mask` (B, N) only the masked points take part; samples with no masked point contribute zero and the
    sum is still divided by B (official `obj_aware` behaviour).
    """
    d = torch.cdist(pts, recon)  # (B, N, R)
    if mask is None:
        return 0.5 * d.min(dim=2).values.mean() + 0.5 * d.min(dim=1).values.mean()
    m = mask.to(torch.bool)
    count = m.sum(dim=1)  # (B,)
    p_to_r = (d.min(dim=2).values * m).sum(dim=1) / count.clamp_min(1)
    r_to_p = d.masked_fill(~m.unsqueeze(2), float("inf")).min(dim=1).values.mean(dim=1)
    per_sample = torch.where(count > 0, 0.5 * p_to_r + 0.5 * r_to_p, torch.zeros_like(p_to_r))
    return per_sample.sum() / pts.shape[0]


def delta_loss(delta: torch.Tensor) -> torch.Tensor:
    """delta (B, R, 3) -> mean offset length."""
    return delta.norm(dim=2).mean()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """student, teacher (B, C_T) -> mean_b ||student_b - teacher_b||."""
    return (student - teacher.to(student.dtype)).norm(dim=1).mean()


class CleanPoseLoss:
    """`loss(outputs, batch)` -> weighted terms `loss_<name>` and their sum `loss_all` (scalar tensors).

    Needs, from the network's training outputs: pred_rotation, pred_translation, pred_size, pred_kpt_3d,
    pred_kpt_nocs, recon_model, recon_delta, and distillation_pointnet / distillation_ulip (KD); from the
    batch: pts (B, N, 3), rotation_label (B, 3, 3), translation_label (B, 3), size_label (B, 3) metric, and
    pc_mask (B, N) for the object-aware reconstruction term.
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, outputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        need = ["pts", "rotation_label", "translation_label", "size_label"]
        if cfg.recon > 0 and cfg.recon_obj_aware:
            need.append("pc_mask")
        missing = [k for k in need if k not in batch]
        if missing:
            raise KeyError(f"loss needs batch keys {missing} (has {sorted(batch)})")
        pts = batch["pts"].float()
        gt_r, gt_t, gt_s = (batch[k].float() for k in ("rotation_label", "translation_label", "size_label"))
        kpt = outputs["pred_kpt_3d"]
        terms: dict[str, Callable[[], torch.Tensor]] = {
            "pose": lambda: pose_loss(
                outputs["pred_rotation"], outputs["pred_translation"], outputs["pred_size"], gt_r, gt_t, gt_s
            ),
            "cd": lambda: chamfer_kpt_to_points(kpt, pts),
            "nocs": lambda: nocs_loss(outputs["pred_kpt_nocs"], kpt, gt_r, gt_t, gt_s, cfg.nocs_beta),
            "diversity": lambda: diversity_loss(kpt, cfg.diversity_th),
            "recon": lambda: recon_loss(
                pts, outputs["recon_model"], batch["pc_mask"] if cfg.recon_obj_aware else None
            ),
            "delta": lambda: delta_loss(outputs["recon_delta"]),
            "distillation": lambda: distillation_loss(
                outputs["distillation_pointnet"], outputs["distillation_ulip"]
            ),
        }
        if cfg.distillation > 0 and "distillation_pointnet" not in outputs:
            raise KeyError(
                "loss.distillation > 0 but the outputs have no distillation features (KD disabled?)"
            )
        out = {
            f"loss_{name}": getattr(cfg, name) * fn() for name, fn in terms.items() if getattr(cfg, name) > 0
        }
        out[TOTAL_KEY] = sum(out.values()) if out else kpt.new_zeros(())
        return out


def build_loss(cfg: Any) -> CleanPoseLoss:
    """The loss of a `CleanPoseConfig` (its `loss` section) or of a `LossConfig`."""
    return CleanPoseLoss(cfg.loss if hasattr(cfg, "loss") else cfg)
