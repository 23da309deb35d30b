"""Instance-adaptive keypoint detector (IAKD) of AG-Pose, as used unchanged by CleanPose.

Official code: `IAKD` in [CP model/Net_modules.py]; architecture-facts §2.3. K learned queries (shared by all
categories, Xavier-normal init) attend to the fused per-point features through a stack of `AttnBlock`s; the
heatmap is the softmax over points of the cosine similarity between each updated query and each point feature,
divided by a temperature of 0.1. Keypoint positions and features are then heatmap-weighted averages of the
points and their features (done by the caller, `CleanPose`, because it needs both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .attention import AttnConfig, AttnLayer

__all__ = ["IAKDConfig", "IAKD"]


@dataclass
class IAKDConfig:
    kpt_num: int = 96  # K, keypoints per object
    query_dim: int = 256  # width of the queries; equals the fused point-feature width C
    attn: AttnConfig = field(default_factory=lambda: AttnConfig(block_num=4))
    temperature: float = 0.1  # softmax temperature of the cosine heatmap (official: hard-coded 0.1)

    def validate(self) -> None:
        if self.kpt_num < 1:
            raise ValueError(f"kpt_num must be >= 1, got {self.kpt_num}")
        if self.attn.d_model != self.query_dim:
            raise ValueError(f"attn.d_model ({self.attn.d_model}) must equal query_dim ({self.query_dim})")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class IAKD(nn.Module):
    """Learned keypoint queries -> soft assignment of every keypoint over the N input points."""

    def __init__(self, cfg: IAKDConfig):
        super().__init__()
        self.cfg = cfg
        self.kpt_query = nn.Parameter(torch.empty(cfg.kpt_num, cfg.query_dim))
        nn.init.xavier_normal_(self.kpt_query)
        self.attn = AttnLayer(cfg.attn)

    def forward(self, point_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Detect keypoints.

        Args:
            point_feats: (B, N, C) fused per-point features ([geometry ; image] channels).

        Returns:
            queries (B, K, C) after attention, and heatmap (B, K, N): for each keypoint a softmax
            distribution over the N points (rows sum to 1).
        """
        b = point_feats.shape[0]
        query = self.kpt_query.unsqueeze(0).expand(b, -1, -1)
        query, _ = self.attn(query, point_feats)
        # Cosine similarity with the official eps 1e-7 added to the norms (not F.normalize's clamp).
        q = query / (query.norm(dim=2, keepdim=True) + 1e-7)
        f = point_feats / (point_feats.norm(dim=2, keepdim=True) + 1e-7)
        heatmap = F.softmax(torch.bmm(q, f.transpose(1, 2)) / self.cfg.temperature, dim=2)  # (B, K, N)
        return query, heatmap
