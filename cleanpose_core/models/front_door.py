"""CleanPose's causal front-door module (`FrontDoorEncoder`).

Paper: CleanPose §4.2, Eqs. (13)-(15). Official code: `FrontDoorEncoder` in [CP model/Net_modules.py];
architecture-facts §2.5. With F_kpt (B, K, C) the keypoint features and F_samp (B, N_s, C) the confounder
samples drawn from the sample's own category queue:

    s   = SelfAttnLayer(Linear_local(F_kpt))                 2 pre-norm self-attention blocks
    c   = AttnLayer(Linear_global(F_kpt), F_samp)            4 blocks of cross-attn, self-attn, FFN
    F_f = LayerNorm(s + c)
    w   = sigmoid(Linear_aug(F_f) + Linear_ori(F_kpt))       one gate per keypoint, (B, K, 1)
    out = w * F_f + (1 - w) * F_kpt

3,561,986 parameters at C = 256 (cross 2,637,824, self 791,552, two input Linears 65,792 each, LN 512, two
gates 257 each). Where the paper differs: it writes single MHSA/MHCA and bias-free C x 1 gate vectors; the
code (followed here) uses the layers above and Linear(C, 1) gates *with* bias.

Switch: `fusion: false` (paper Tab. 5b "w/o fusion") returns F_f directly and drops the two gates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .attention import AttnConfig, AttnLayer, SelfAttnLayer

__all__ = ["FrontDoorConfig", "FrontDoorEncoder"]


@dataclass
class FrontDoorConfig:
    feat_dim: int = 256  # C, width of the keypoint features and of the queue entries
    cross_attn: AttnConfig = field(default_factory=lambda: AttnConfig(block_num=4))
    self_attn: AttnConfig = field(default_factory=lambda: AttnConfig(block_num=2))
    fusion: bool = True  # adaptive gate between F_f and F_kpt (official); false = output F_f (Tab. 5b)

    def validate(self) -> None:
        for name, a in (("cross_attn", self.cross_attn), ("self_attn", self.self_attn)):
            if a.d_model != self.feat_dim:
                raise ValueError(f"{name}.d_model ({a.d_model}) must equal feat_dim ({self.feat_dim})")


class FrontDoorEncoder(nn.Module):
    """Front-door adjustment over keypoint features with cross-attention to confounder samples."""

    def __init__(self, cfg: FrontDoorConfig):
        super().__init__()
        c = cfg.feat_dim
        self.fusion = cfg.fusion
        self.linear_local = nn.Linear(c, c)
        self.linear_global = nn.Linear(c, c)
        self.self_attn = SelfAttnLayer(cfg.self_attn)
        self.cross_attn = AttnLayer(cfg.cross_attn)
        self.norm = nn.LayerNorm(c)
        if cfg.fusion:
            self.gate_aug = nn.Linear(c, 1)
            self.gate_ori = nn.Linear(c, 1)

    def gate(self, fused: torch.Tensor, kpt_feat: torch.Tensor) -> torch.Tensor:
        """Fusion weight w (B, K, 1) in (0, 1) from F_f (B, K, C) and F_kpt (B, K, C)."""
        return torch.sigmoid(self.gate_aug(fused) + self.gate_ori(kpt_feat))

    def forward(self, kpt_feat: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """kpt_feat (B, K, C), samples (B, N_s, C) -> causality-enhanced keypoint features (B, K, C)."""
        s = self.self_attn(self.linear_local(kpt_feat))
        c, _ = self.cross_attn(self.linear_global(kpt_feat), samples)
        fused = self.norm(s + c)
        if not self.fusion:
            return fused
        w = self.gate(fused, kpt_feat)
        return w * fused + (1.0 - w) * kpt_feat
