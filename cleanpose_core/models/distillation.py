"""CleanPose's residual knowledge-distillation head (student side).

Paper: CleanPose §4.3, Eq. (16). Official code: `projector_pts` and `pointnet2ulip` in [CP model/Net.py];
architecture-facts §2.7. From the per-point geometry features F (B, C1, N):

    f = mean_N(F);  f = f / ||f||_2                      (the L2 normalisation is not in the paper)
    f_hat = f + mu * K2(GELU(K1(f)))                     K1, K2: Linear(C1, C1) without bias, mu = 0.1
    z = f_hat @ psi                                      psi: (C1, C_T) bias-free, N(0, C_T^-0.5)

K1 uses Kaiming-normal init and K2 starts at zero, so at initialisation f_hat = f exactly. z is regressed onto
the teacher's (B, C_T) feature (C_T = 768 for ULIP-2 PointBERT's [CLS || max-pool]).

Difference: the official normalisation divides by the bare norm; we add eps 1e-12 (as F.normalize does) so
an all-zero pooled feature gives zeros instead of NaN. Parameters exist in the inference model too (as in the
official checkpoint) but are used only in training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResidualKDHead"]


class ResidualKDHead(nn.Module):
    """Pooled, L2-normalised student feature -> residual MLP -> projection to the teacher width."""

    def __init__(self, in_dim: int = 128, teacher_dim: int = 768, mu: float = 0.1):
        super().__init__()
        self.mu = mu
        # Official names: projector_pts = (K1, K2), pointnet2ulip = psi.
        self.k1 = nn.Linear(in_dim, in_dim, bias=False)
        self.k2 = nn.Linear(in_dim, in_dim, bias=False)
        self.psi = nn.Parameter(torch.randn(in_dim, teacher_dim) * teacher_dim ** -0.5)
        nn.init.kaiming_normal_(self.k1.weight)
        nn.init.zeros_(self.k2.weight)

    def residual(self, f: torch.Tensor) -> torch.Tensor:
        """f_hat = f + mu * K2(GELU(K1(f))) for f (B, C1)."""
        return f + self.mu * self.k2(F.gelu(self.k1(f)))

    def forward(self, point_feat: torch.Tensor) -> torch.Tensor:
        """point_feat (B, C1, N) geometry features -> student embedding z (B, C_T)."""
        f = F.normalize(point_feat.mean(dim=2), dim=1, eps=1e-12)
        return self.residual(f) @ self.psi
