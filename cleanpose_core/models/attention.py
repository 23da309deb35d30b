"""Pre-norm transformer blocks shared by the keypoint detector, the NOCS predictor and the front-door module.

Official code: `AttnBlock`/`AttnLayer` and `SelfAttnBlock`/`SelfAttnLayer` in [CP model/Net_modules.py]
(architecture-facts §2.3, §2.5). Every block is pre-norm with residual sub-layers and uses
`nn.MultiheadAttention(batch_first=True)` with its default biases, dropout 0:

- `AttnBlock`: q += CrossMHA(LN1(q), F, F) (keys/values *not* normalised); q += SelfMHA(LN2(q));
  q += FFN(LN3(q)), FFN = Linear, ReLU, Linear.
- `SelfAttnBlock`: q += MHA(LN1(q)); q += FFN(LN2(q)).

Layers are plain stacks of blocks with no final norm (4 x 659,456 = 2,637,824 parameters for the paper's
cross-attention layer, 2 x 395,776 = 791,552 for its self-attention layer). As in the CleanPose code (not
AG-Pose's), inputs are batch-first (B, L, C); callers transpose channel-first features themselves.

Difference from the official code: the attention weights of the cross-attention are not computed unless
asked for (`need_weights`), since the official code returns them and never uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["AttnConfig", "FeedForward", "AttnBlock", "AttnLayer", "SelfAttnBlock", "SelfAttnLayer"]


@dataclass
class AttnConfig:
    """Shape of one attention layer (a stack of identical pre-norm blocks)."""

    block_num: int = 4  # number of blocks in the stack
    d_model: int = 256  # token width C
    num_heads: int = 4  # attention heads; must divide d_model
    dim_ffn: int = 256  # hidden width of the feed-forward sub-layer

    def validate(self) -> None:
        if self.block_num < 1:
            raise ValueError(f"block_num must be >= 1, got {self.block_num}")
        if self.d_model < 1 or self.num_heads < 1 or self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if self.dim_ffn < 1:
            raise ValueError(f"dim_ffn must be >= 1, got {self.dim_ffn}")


class FeedForward(nn.Sequential):
    """Linear(C, C_ffn), ReLU, Linear(C_ffn, C), applied token-wise."""

    def __init__(self, d_model: int, dim_ffn: int):
        super().__init__(nn.Linear(d_model, dim_ffn), nn.ReLU(inplace=True), nn.Linear(dim_ffn, d_model))


class AttnBlock(nn.Module):
    """Cross-attention to a feature set, self-attention among the queries, then FFN; all pre-norm residual."""

    def __init__(self, d_model: int, num_heads: int, dim_ffn: int):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, dim_ffn)

    def forward(self, query: torch.Tensor, feats: torch.Tensor,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (B, L, C), feats (B, S, C) -> updated query (B, L, C), head-averaged weights (B, L, S) or
        None."""
        q = self.norm1(query)
        attended, weights = self.cross_attn(q, feats, feats, need_weights=need_weights)
        query = query + attended
        q = self.norm2(query)
        query = query + self.self_attn(q, q, q, need_weights=False)[0]
        query = query + self.ffn(self.norm3(query))
        return query, weights


class AttnLayer(nn.Module):
    """A stack of `AttnBlock`s; every block attends to the same `feats`."""

    def __init__(self, cfg: AttnConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            AttnBlock(cfg.d_model, cfg.num_heads, cfg.dim_ffn) for _ in range(cfg.block_num)
        )

    def forward(self, query: torch.Tensor, feats: torch.Tensor,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (B, L, C), feats (B, S, C) -> (B, L, C) and, if asked, the last block's weights (B, L, S)."""
        weights = None
        for i, block in enumerate(self.blocks):
            query, weights = block(query, feats, need_weights=need_weights and i == len(self.blocks) - 1)
        return query, weights


class SelfAttnBlock(nn.Module):
    """Self-attention then FFN, both pre-norm residual."""

    def __init__(self, d_model: int, num_heads: int, dim_ffn: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, dim_ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C)."""
        q = self.norm1(x)
        x = x + self.self_attn(q, q, q, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))


class SelfAttnLayer(nn.Sequential):
    """A stack of `SelfAttnBlock`s: (B, L, C) -> (B, L, C)."""

    def __init__(self, cfg: AttnConfig):
        super().__init__(
            *(SelfAttnBlock(cfg.d_model, cfg.num_heads, cfg.dim_ffn) for _ in range(cfg.block_num))
        )
