"""PointBERT point encoder as used by ULIP-2: the frozen KD teacher of CleanPose (768-d [CLS ; max-pool]
feature).

Paper: CleanPose §4.3 distils from "ULIP-2's PointBERT". Official code: `PointTransformer` in ULIP
`models/pointbert/point_encoder.py` with `Group` / `Encoder` from `dvae.py`, config
`PointTransformer_8192point.yaml` ([CP model/pointbert/*]); architecture-facts §6. Reproduced:
- grouping: FPS (CUDA rule: start at index 0, skip near-origin points) to `num_group` centres, kNN of
  `group_size` points each, neighbourhoods relative to their centre;
- mini-PointNet group encoder (Conv1d 3->128, BN, ReLU, Conv1d 128->256; max-pool; [global ; local] 512 ->
  Conv1d 512, BN, ReLU, Conv1d -> encoder_dims; max-pool);
- `reduce_dim`, zero `cls_token`, random-normal `cls_pos`, `pos_embed` MLP 3->128->trans_dim on the centres
  re-added at the input of every block; pre-norm blocks (LayerNorm eps 1e-5, qkv without bias, GELU MLP x4),
  DropPath linspace(0, rate, depth); final LayerNorm; output [x_cls ; max over group tokens].
Module names equal ULIP's `point_encoder.*` names, so its checkpoint loads after removing two prefixes.

What differs and why (same function, same parameters):
- The transformer blocks are timm's `Block` (same layout and key names, fused scaled-dot-product attention).
- The group encoder runs channels-last with linear maps on its Conv1d weights (BatchNorm over all points of
all
  groups either way), and applies the first Conv1d of `second_conv` to the per-group global feature once per
  group instead of once per point: [g ; l] -> W [g ; l] = W_g g + W_l l. This removes a third of the teacher's
  FLOPs; the result is equal up to float rounding.
- kNN distances are computed as exact differences rather than ULIP's |a|^2 + |b|^2 - 2ab expansion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from ...ops import furthest_point_sample, index_points, knn
from .ulip import load_point_encoder_file, ulip2_point_encoder_state_dict

__all__ = ["PointBERTConfig", "PointBERT", "GroupEncoder", "TransformerEncoder", "ulip2_pointbert_state_dict",
           "load_ulip2_pointbert", "load_teacher_weights"]

ARCH = "pointbert"


@dataclass
class PointBERTConfig:
    """PointBERT teacher; the defaults are ULIP-2's `PointTransformer_8192point.yaml` (the one CleanPose
    uses)."""

    trans_dim: int = 384  # token width; the output feature is 2 x trans_dim = 768
    depth: int = 12  # transformer blocks
    num_heads: int = 6
    drop_path_rate: float = 0.1  # stochastic depth, linear from 0 at block 0 to this at the last block
    group_size: int = 32  # points per group (kNN); the input needs at least this many points
    num_group: int = 512  # FPS centres (tokens); CleanPose feeds 1024 points, so the groups overlap heavily
    encoder_dims: int = 256  # group-encoder output width before `reduce_dim`

    def validate(self) -> None:
        if (
            min(
                self.trans_dim, self.depth, self.num_heads, self.group_size, self.num_group, self.encoder_dims
            )
            < 1
        ):
            raise ValueError(
                "trans_dim, depth, num_heads, group_size, num_group and encoder_dims must be >= 1"
            )
        if self.trans_dim % self.num_heads:
            raise ValueError(f"trans_dim {self.trans_dim} must be divisible by num_heads {self.num_heads}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must lie in [0, 1), got {self.drop_path_rate}")

    @property
    def out_dim(self) -> int:
        return 2 * self.trans_dim


# ---------------------------------------------------------------------------------------------- blocks
class GroupEncoder(nn.Module):
    """Mini-PointNet over each group: (B, G, n, 3) relative points -> (B, G, encoder_dims) tokens.

    The Conv1d containers keep ULIP's layout (`first_conv.{0,1,3}`, `second_conv.{0,1,3}`); `forward` applies
    them channels-last (see the module docstring).
    """

    def __init__(self, encoder_channel: int):
        super().__init__()
        self.encoder_channel = encoder_channel
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True),
                                        nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                         nn.Conv1d(512, encoder_channel, 1))

    @staticmethod
    def _linear(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, conv.weight[..., 0], conv.bias)

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, g, n, _ = groups.shape
        conv1, bn1, act1, conv2 = self.first_conv
        x = self._linear(conv1, groups.reshape(b * g * n, 3))  # (BGn, 128): BatchNorm1d over all points
        local = self._linear(conv2, act1(bn1(x))).view(b * g, n, 256)
        glob = local.amax(dim=1)  # (BG, 256)
        conv3, bn2, act2, conv4 = self.second_conv
        w = conv3.weight[..., 0]  # (512, 512): input channels [global (256) ; local (256)], ULIP's order
        h = F.linear(local, w[:, 256:]) + F.linear(glob, w[:, :256], conv3.bias).unsqueeze(1)
        h = act2(bn2(h.view(b * g * n, -1)))
        out = self._linear(conv4, h).view(b * g, n, self.encoder_channel).amax(dim=1)
        return out.view(b, g, self.encoder_channel)


class TransformerEncoder(nn.Module):
    """`depth` pre-norm blocks; the positional embedding is added again at the input of every block."""

    def __init__(self, dim: int, depth: int, num_heads: int, drop_path_rate: float):
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio=4.0, qkv_bias=False, drop_path=r,
                                          norm_layer=nn.LayerNorm) for r in rates)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x + pos)
        return x


# ---------------------------------------------------------------------------------------------- network
class PointBERT(nn.Module):
    """ULIP-2 PointBERT encoder: xyz (B, N, 3), metres -> (B, 2 * trans_dim) = [CLS after LN ; token
    max-pool]."""

    def __init__(self, cfg: PointBERTConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PointBERTConfig()
        cfg.validate()  # from_dict validates too; this catches configs built directly
        self.encoder = GroupEncoder(cfg.encoder_dims)
        self.reduce_dim = nn.Linear(cfg.encoder_dims, cfg.trans_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.trans_dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, cfg.trans_dim))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, cfg.trans_dim))
        self.blocks = TransformerEncoder(cfg.trans_dim, cfg.depth, cfg.num_heads, cfg.drop_path_rate)
        self.norm = nn.LayerNorm(cfg.trans_dim)
        self.out_dim = cfg.out_dim

    def group(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbourhoods (B, G, group_size, 3) relative to their centres, and the centres (B, G, 3)."""
        centres = index_points(xyz, furthest_point_sample(xyz, self.cfg.num_group))
        _, idx = knn(self.cfg.group_size, xyz, centres)
        return index_points(xyz, idx) - centres.unsqueeze(2), centres

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        if xyz.dim() != 3 or xyz.shape[-1] != 3 or xyz.shape[1] < self.cfg.group_size:
            raise ValueError(f"PointBERT: expected points (B, N >= group_size={self.cfg.group_size}, 3), "
                             f"got {tuple(xyz.shape)}")
        neighbourhoods, centres = self.group(xyz)
        tokens = self.reduce_dim(self.encoder(neighbourhoods))
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(centres)], dim=1)
        x = self.norm(self.blocks(x, pos))
        return torch.cat([x[:, 0], x[:, 1:].amax(dim=1)], dim=-1)


# ---------------------------------------------------------------------------------------------- weights
def ulip2_pointbert_state_dict(ckpt_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our PointBERT state dict from a ULIP-2 PointBERT checkpoint's state dict (`module.point_encoder.*`)."""
    return ulip2_point_encoder_state_dict(ckpt_state_dict)


def load_teacher_weights(model: PointBERT, path: str | Path) -> PointBERT:
    """Load `path` into `model` (strict) and freeze it. Accepts the official ULIP-2 PointBERT checkpoint
    (`pretrained_models_ckpt_zero-sho_classification_pointbert_ULIP-2.pt`), a `cleanpose teacher` file, or a
    bare state dict of this encoder. Errors name the file and the expected keys."""
    return load_point_encoder_file(model, path, "PointBERT teacher", ARCH)


def load_ulip2_pointbert(path: str | Path, cfg: PointBERTConfig | None = None) -> PointBERT:
    """A frozen PointBERT (eval mode; CleanPose runs it in train mode, so call `.train()` to reproduce that)
    with the weights of `path` (see `load_teacher_weights`); `cfg` defaults to the ULIP-2 configuration."""
    return load_teacher_weights(PointBERT(cfg), path).eval()
