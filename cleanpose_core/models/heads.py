"""Output heads of AG-Pose/CleanPose: keypoint NOCS predictor, pose/size estimator, shape reconstructor.

Official code: `NOCS_Predictor`, `PoseSizeEstimator`, `Reconstructor` in [CP model/Net_modules.py] and
`Ortho6d2Mat` in [CP utils/rotation_utils.py]; architecture-facts §2.8-2.10. Conventions: column vectors,
R maps the object (NOCS) frame to the camera frame; NOCS coordinates are normalised by the box diagonal.

Differences from the official code (same results, less work):
- the NOCS predictor's last layer computes only the selected category's 3 x bins rows for each sample
  instead of all cat_num of them and then indexing;
- channel-first Conv1d(k=1) layers are written as Linear layers on token-major (B, K, C) tensors: the same
  maths and parameter counts (an official Conv1d weight (out, in, 1) is our (out, in)), without transposes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .attention import AttnConfig, SelfAttnLayer

__all__ = ["NOCSConfig", "NOCSPredictor", "PoseSizeEstimator", "Reconstructor", "ortho6d_to_matrix",
           "TokenBatchNorm"]


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the channel axis of a token-major (B, K, C) tensor (the official Conv1d+BN layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _mlp(widths: list[int], bn: bool = False, last_act: bool = False) -> nn.Sequential:
    """Token-wise MLP; ReLU (and optional BN) after every layer except, unless `last_act`, the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        last = i == len(widths) - 2
        if bn:
            layers.append(TokenBatchNorm(b))
        if not last or last_act:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def ortho6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B, 3, 3) from 6D vectors (B, 6) with the y axis as anchor (official `Ortho6d2Mat`).

    y = normalise(r[3:6]); z = normalise(r[0:3] x y); x = y x z; R = [x y z] as columns, so det(R) = +1.
    Norms are clamped at 1e-8 as in the official code.
    """
    y = r6[:, 3:6] / r6[:, 3:6].norm(dim=1, keepdim=True).clamp_min(1e-8)
    z = torch.linalg.cross(r6[:, 0:3], y, dim=1)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-8)
    x = torch.linalg.cross(y, z, dim=1)
    return torch.stack([x, y, z], dim=2)


@dataclass
class NOCSConfig:
    bins_num: int = 64  # bins per NOCS axis; the expectation over bin centres is the prediction
    hidden: int = 512  # width of the MLPs before and after the attention
    attn: AttnConfig = field(default_factory=lambda: AttnConfig(block_num=2))

    def validate(self) -> None:
        if self.bins_num < 2 or self.hidden < 1:
            raise ValueError(f"bins_num must be >= 2 and hidden >= 1, got {self.bins_num}, {self.hidden}")


class NOCSPredictor(nn.Module):
    """Per-keypoint NOCS coordinates as expectations over `bins_num` bins per axis, one head per category."""

    def __init__(self, cfg: NOCSConfig, d: int, cat_num: int):
        super().__init__()
        h, self.bins, self.cat_num = cfg.hidden, cfg.bins_num, cat_num
        if cfg.attn.d_model != d:
            raise ValueError(f"NOCS attention width {cfg.attn.d_model} must equal the keypoint width {d}")
        self.nocs_mlp = _mlp([d, h, h, d], bn=True)  # BN after every layer, no final ReLU
        self.attn = SelfAttnLayer(cfg.attn)
        self.atten_mlp = _mlp([d, h, h], last_act=True)
        self.head = nn.Linear(h, cat_num * 3 * cfg.bins_num)  # rows grouped by category, then xyz, then bin
        # Bin centres -0.5 + 1/(2 bins) ... 0.5 - 1/(2 bins), spacing 1/bins.
        self.register_buffer("bin_centres", (torch.arange(cfg.bins_num) + 0.5) / cfg.bins_num - 0.5,
                             persistent=False)

    def forward(self, kpt_feat: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """kpt_feat (B, K, C), class_ids (B,) 0-based -> NOCS coordinates (B, K, 3) in about [-0.5, 0.5]."""
        x = self.attn(self.nocs_mlp(kpt_feat))
        x = self.atten_mlp(x)  # (B, K, h)
        rows = 3 * self.bins
        w = self.head.weight.view(self.cat_num, rows, -1)[class_ids]  # (B, 3*bins, h): only the chosen head
        bias = self.head.bias.view(self.cat_num, rows)[class_ids]  # (B, 3*bins)
        logits = torch.baddbmm(bias.unsqueeze(1), x, w.transpose(1, 2))  # (B, K, 3*bins)
        prob = F.softmax(logits.view(*logits.shape[:2], 3, self.bins), dim=3)
        return prob @ self.bin_centres  # (B, K, 3)


class PoseSizeEstimator(nn.Module):
    """Rotation (ortho6d, y anchor), translation and metric size from keypoints, their NOCS and features."""

    def __init__(self, d: int, hidden: int = 512):
        super().__init__()
        self.pts_mlp1 = _mlp([3, 32, 64], last_act=True)
        self.pts_mlp2 = _mlp([3, 32, 64], last_act=True)
        self.pose_mlp1 = _mlp([64 + d + 64, hidden, d], last_act=True)
        self.pose_mlp2 = _mlp([2 * d, hidden, hidden], last_act=True)
        self.rotation_estimator = _mlp([hidden, hidden, d, 6])
        self.translation_estimator = _mlp([hidden, hidden, d, 3])
        self.size_estimator = _mlp([hidden, hidden, d, 3])

    def forward(self, kpt_3d: torch.Tensor, kpt_nocs: torch.Tensor,
                kpt_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """kpt_3d (B, K, 3) in the (centred) input frame, kpt_nocs (B, K, 3) (pass it detached), kpt_feat (B,
        K, C) -> R (B, 3, 3), t (B, 3) in the input frame (m), metric size (B, 3) (m)."""
        x = self.pose_mlp1(torch.cat([self.pts_mlp1(kpt_3d), kpt_feat, self.pts_mlp2(kpt_nocs)], dim=2))
        x = torch.cat([x, x.mean(dim=1, keepdim=True).expand_as(x)], dim=2)
        x = self.pose_mlp2(x).mean(dim=1)  # (B, hidden)
        rot = ortho6d_to_matrix(self.rotation_estimator(x))
        return rot, self.translation_estimator(x), self.size_estimator(x)


class Reconstructor(nn.Module):
    """Dense shape reconstruction around the keypoints (AG-Pose; not in the CleanPose paper)."""

    def __init__(self, d: int, pts_per_kpt: int = 10, hidden: int = 512):
        super().__init__()
        self.pts_per_kpt = pts_per_kpt
        self.pos_enc = _mlp([3, 64, 128, d])
        self.mlp = _mlp([d, d, d])
        self.shape_decoder = _mlp([2 * d, hidden, hidden, 3 * pts_per_kpt])

    def forward(self, kpt_3d: torch.Tensor, kpt_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """kpt_3d (B, K, 3), kpt_feat (B, K, C) -> recon (B, K*P, 3) and offsets delta (B, K*P, 3),
        P = pts_per_kpt points per keypoint, keypoint-major; recon = kpt repeated P times + delta."""
        h = self.mlp(kpt_feat)
        g = (self.pos_enc(kpt_3d) + h).mean(dim=1, keepdim=True).expand_as(h)
        delta = self.shape_decoder(torch.cat([g, h], dim=2))  # (B, K, 3P)
        b, k = kpt_3d.shape[:2]
        delta = delta.reshape(b, k * self.pts_per_kpt, 3)
        recon = kpt_3d.repeat_interleave(self.pts_per_kpt, dim=1) + delta
        return recon, delta
