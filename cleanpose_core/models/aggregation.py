"""Geometric-aware feature aggregation (GAFA) of AG-Pose, as used unchanged by CleanPose.

Official code: `GAFA_block`/`GAFA` in [CP model/Net_modules.py]; architecture-facts §2.4. Each block
(972,544 parameters at C = 256):

1. kNN: the k nearest input points of each keypoint (full distance matrix, `ops.knn`);
2. q = fc_in(kpt_feat) (Conv1d, BN, ReLU, Conv1d);
3. pos = fc_delta(kpt - knn_xyz) (MLP 3 -> 64 -> C -> C);
4. knn_feat = fc_delta_1([knn_feat ; pos]) (MLP 2C -> C -> C);
5. local aggregation with softmax_k(cos(q, knn_feat) / tau), tau = 5, residual + ReLU;
6. position encoding abs(kpt) + mean_j rel(kpt_i - kpt_j), both MLPs 3 -> 64 -> C -> C;
7. global fusion fuse_mlp([kpt_feat ; mean_K kpt_feat ; pos]) (Conv1d+BN+ReLU twice), residual + ReLU;
8. out = ReLU(pre + out_mlp(kpt_feat)).

Differences from the official code (same maths, less work; `test/models/test_aggregation.py` checks both
against the direct formulation):
- the relative encoding of step 6 runs its MLP on all K x K keypoint pairs; its last layer is affine, so it
  is applied *after* the mean over j (mean_j(W h_ij + b) = W mean_j(h_ij) + b), and its first layer uses
  W(p_i - p_j) = W p_i - W p_j (~0.6 GMAC less per block and object at K = 96, C = 256);
- steps 3-4: the first layer of fc_delta_1 acts on [knn_feat ; pos] = [gather(P) ; W3 h + b3], so its
  feature half is applied to the N points *before* the gather (N rows instead of K*k) and its position half is
  folded into fc_delta's last layer ((W_b W3) h + W_b b3): one K*k x C x C product less per block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..ops.knn import knn

__all__ = ["GAFAConfig", "GAFABlock", "GAFA"]


@dataclass
class GAFAConfig:
    k_list: tuple[int, ...] = (16, 32)  # neighbours per keypoint, one block per entry
    d_model: int = 256  # feature width C (fused point features and keypoint features)
    pos_hidden: int = 64  # first hidden width of the position MLPs (official: 64)
    tau: float = 5.0  # temperature dividing the cosine similarity (official: 5.0, weights near uniform)

    def validate(self) -> None:
        if not self.k_list or min(self.k_list) < 1:
            raise ValueError(f"k_list must be a non-empty list of positive ints, got {self.k_list}")
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")


def _pos_mlp(hidden: int, d: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(3, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, d),
        nn.ReLU(inplace=True),
        nn.Linear(d, d),
    )


class GAFABlock(nn.Module):
    """One GAFA block: local kNN aggregation then global fusion with position encodings."""

    def __init__(self, k: int, d: int, pos_hidden: int = 64, tau: float = 5.0):
        super().__init__()
        self.k, self.tau = k, tau
        self.fc_in = nn.Sequential(
            nn.Conv1d(d, d, 1), nn.BatchNorm1d(d), nn.ReLU(inplace=True), nn.Conv1d(d, d, 1)
        )
        self.fc_delta = _pos_mlp(pos_hidden, d)
        self.fc_delta_1 = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.fc_delta_abs = _pos_mlp(pos_hidden, d)
        self.fc_delta_l = _pos_mlp(pos_hidden, d)
        self.fuse_mlp = nn.Sequential(nn.Conv1d(3 * d, d, 1), nn.BatchNorm1d(d), nn.ReLU(inplace=True),
                                      nn.Conv1d(d, d, 1), nn.BatchNorm1d(d), nn.ReLU(inplace=True))
        self.out_mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))

    def relative_encoding(self, kpt: torch.Tensor) -> torch.Tensor:
        """mean_j fc_delta_l(kpt_i - kpt_j): (B, K, 3) -> (B, K, C), last layer applied after the mean."""
        lin1, _, lin2, _, lin3 = self.fc_delta_l
        a = F.linear(kpt, lin1.weight)  # (B, K, H): W1 p, so W1 (p_i - p_j) + b1 = a_i - a_j + b1
        h = (a.unsqueeze(2) - a.unsqueeze(1) + lin1.bias).relu_()  # (B, K, K, H)
        h = lin2(h).relu_().mean(dim=2)  # (B, K, C)
        return lin3(h)

    def neighbour_features(self, kpt: torch.Tensor, pts: torch.Tensor, point_feat: torch.Tensor,
                           idx: torch.Tensor) -> torch.Tensor:
        """fc_delta_1([gather(point_feat) ; fc_delta(kpt - gather(pts))]) for neighbour indices idx (B, K, k).

        Returns (B, K, k, C), computed with the reordering described in the module docstring.
        """
        b, n_kpt, k = idx.shape
        c = point_feat.shape[2]
        flat = idx.reshape(b, -1, 1)
        knn_xyz = pts.gather(1, flat.expand(-1, -1, 3)).view(b, n_kpt, k, 3)
        d1, _, d2, _, d3 = self.fc_delta
        h = d2(d1(kpt.unsqueeze(2) - knn_xyz).relu_()).relu_()  # (B, K, k, C), fc_delta but its last layer
        first, _, second = self.fc_delta_1
        w_feat, w_pos = first.weight[:, :c], first.weight[:, c:]
        proj = F.linear(point_feat, w_feat)  # (B, N, C): feature half, once per point
        proj = proj.gather(1, flat.expand(-1, -1, proj.shape[2])).view(b, n_kpt, k, -1)
        fused_w = w_pos @ d3.weight  # (C, C): position half folded into fc_delta's last layer
        fused_b = w_pos @ d3.bias + first.bias
        return second(F.linear(h, fused_w, fused_b).add_(proj).relu_())

    def forward(self, kpt_feat: torch.Tensor, kpt: torch.Tensor, point_feat: torch.Tensor,
                pts: torch.Tensor) -> torch.Tensor:
        """kpt_feat (B, K, C), kpt (B, K, 3), point_feat (B, N, C), pts (B, N, 3) -> (B, K, C)."""
        n_kpt = kpt_feat.shape[1]
        idx = knn(self.k, pts, kpt)[1]  # (B, K, k), nearest first
        pre = kpt_feat

        q = self.fc_in(kpt_feat.transpose(1, 2)).transpose(1, 2)  # (B, K, C)
        knn_feat = self.neighbour_features(kpt, pts, point_feat, idx)  # (B, K, k, C)
        sim = F.cosine_similarity(q.unsqueeze(2), knn_feat, dim=3)  # (B, K, k)
        w = F.softmax(sim / self.tau, dim=2)
        kpt_feat = torch.relu((w.unsqueeze(2) @ knn_feat).squeeze(2) + pre)  # weighted sum over k
        pre = kpt_feat

        pos_l = self.fc_delta_abs(kpt) + self.relative_encoding(kpt)  # (B, K, C)
        glob = kpt_feat.mean(dim=1, keepdim=True).expand(-1, n_kpt, -1)
        fused = self.fuse_mlp(torch.cat([kpt_feat, glob, pos_l], dim=2).transpose(1, 2)).transpose(1, 2)
        kpt_feat = torch.relu(fused + pre)
        return torch.relu(kpt_feat + self.out_mlp(kpt_feat))


class GAFA(nn.Module):
    """A chain of `GAFABlock`s with growing neighbourhoods (official k = 16 then 32)."""

    def __init__(self, cfg: GAFAConfig):
        super().__init__()
        self.blocks = nn.ModuleList(GAFABlock(k, cfg.d_model, cfg.pos_hidden, cfg.tau) for k in cfg.k_list)

    def forward(self, kpt_feat: torch.Tensor, kpt: torch.Tensor, point_feat: torch.Tensor,
                pts: torch.Tensor) -> torch.Tensor:
        """kpt_feat (B, K, C), kpt (B, K, 3) (pass it detached, as the official code does), point_feat (B, N,
        C), pts (B, N, 3) -> (B, K, C)."""
        for block in self.blocks:
            kpt_feat = block(kpt_feat, kpt, point_feat, pts)
        return kpt_feat
