"""PointNet++ SSG point encoder as used by ULIP-2: the 256-d features that initialise CleanPose's confounder
queue.

Official code: `Pointnet2_Ssg` in ULIP `models/pointnet2/pointnet2.py` on `PointNetSetAbstraction` of
`pointnet2_utils.py` (a pure-PyTorch PointNet++), wrapped by `ULIP_PN_SSG`; CleanPose's `queue_extraction.py`
runs it in eval mode on the raw camera-frame points and keeps the output before `pc_projection`
(architecture-facts §2.6). Reproduced:
- sa1: 512 centres, radius 0.2, 32 samples, MLP 3->64->64->128; sa2: 128 centres, radius 0.4, 64 samples,
  MLP 131->128->128->256; sa3: group-all on *absolute* xyz, MLP 259->256->512->1024, max-pool;
- every MLP layer a 1x1 Conv2d **with** bias, BatchNorm2d, ReLU (PyTorch default init);
- fc1 1024->512, BN, ReLU, Dropout 0.4; fc2 512->256, BN, ReLU, Dropout 0.4;
- FPS starts at a random index and does not skip near-origin points; the ball keeps d^2 <= r^2 in index order,
  padded with the first hit; grouped xyz relative to the centre, concatenated before the features.
Module names equal ULIP's `point_encoder.*` names (`sa1.mlp_convs.0`, `sa1.mlp_bns.0`, ..., `fc1`, `bn1`,
...).

What differs and why:
- The random FPS start comes from an optional `torch.Generator` passed to `forward`, so queue initialisation
  can be reproduced; without one it uses the global RNG, as the official `torch.randint` does.
- Squared distances are exact differences, not ULIP's |a|^2 + |b|^2 - 2ab expansion (which can misplace points
  within float rounding of the ball's surface).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import ball_query, furthest_point_sample, group_points, index_points
from ..pointnet2 import PointwiseConv2d
from .ulip import load_point_encoder_file, ulip2_point_encoder_state_dict

__all__ = ["PointNet2SSGConfig", "PointNet2SSG", "SetAbstraction", "ulip2_pointnet2_ssg_state_dict",
           "load_ulip2_pointnet2_ssg", "load_teacher_weights"]

ARCH = "pointnet2_ssg"
Widths = tuple[int, ...]


@dataclass
class PointNet2SSGConfig:
    """ULIP-2 PointNet++ SSG layout; the defaults are the official (hard-coded) values."""

    npoints: tuple[int, int] = (512, 128)  # FPS centres of sa1, sa2
    # Ball radii of sa1, sa2 in input units: ULIP trains on clouds normalised to the unit sphere, while
    # CleanPose feeds camera-frame metres (objects of ~0.1-0.4 m), so few balls hold more than one scale.
    radii: tuple[float, float] = (0.2, 0.4)
    nsamples: tuple[int, int] = (32, 64)  # ball slots of sa1, sa2
    sa_mlps: tuple[Widths, Widths] = ((64, 64, 128), (128, 128, 256))  # excluding the input (+3 xyz)
    global_mlp: Widths = (256, 512, 1024)  # sa3 (group-all) widths, excluding the input
    fc_dims: tuple[int, int] = (512, 256)  # fc1, fc2; fc2's width is the feature size
    dropout: float = 0.4  # after fc1 and fc2 (training mode only)
    random_start: bool = True  # official FPS starts at a random index; False starts at index 0

    def validate(self) -> None:
        if min(*self.npoints, *self.nsamples) < 1 or min(self.radii) <= 0:
            raise ValueError("npoints, nsamples and radii must be positive")
        widths = [*self.sa_mlps[0], *self.sa_mlps[1], *self.global_mlp, *self.fc_dims]
        if not (self.sa_mlps[0] and self.sa_mlps[1] and self.global_mlp) or min(widths) < 1:
            raise ValueError("MLP widths must be non-empty lists of positive integers")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")

    @property
    def out_dim(self) -> int:
        return self.fc_dims[-1]


# ---------------------------------------------------------------------------------------------- blocks
class SetAbstraction(nn.Module):
    """Single-scale set abstraction (ULIP's `PointNetSetAbstraction`); `npoint=None` groups all points."""

    def __init__(self, npoint: int | None, radius: float | None, nsample: int | None, in_channel: int,
                 mlp: Sequence[int]):
        super().__init__()
        self.npoint, self.radius, self.nsample = npoint, radius, nsample
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        for c_in, c_out in zip([in_channel, *mlp[:-1]], mlp):
            self.mlp_convs.append(PointwiseConv2d(c_in, c_out, bias=True))
            self.mlp_bns.append(nn.BatchNorm2d(c_out))

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None,
                start_idx: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """xyz (B, N, 3), features (B, C, N) or None -> centres (B, S, 3) (None for group-all), (B, C', S) (S
        = 1 for group-all)."""
        if self.npoint is None:  # group all: absolute xyz (not centred) then the features, one group
            parts = [xyz.transpose(1, 2)] + ([features] if features is not None else [])
            x, new_xyz = torch.cat(parts, dim=1).unsqueeze(2), None  # (B, C, 1 group, N points)
        else:
            new_xyz = index_points(xyz, furthest_point_sample(xyz, self.npoint, skip_near_origin=False,
                                                              start_idx=start_idx))
            idx = ball_query(self.radius, self.nsample, xyz, new_xyz, inclusive=True)
            parts = [group_points(xyz.transpose(1, 2), idx) - new_xyz.transpose(1, 2).unsqueeze(-1)]
            if features is not None:
                parts.append(group_points(features, idx))
            x = torch.cat(parts, dim=1)  # (B, C, S, k)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            x = F.relu(bn(conv(x)))
        return new_xyz, x.amax(dim=-1)  # max over each group's points


# ---------------------------------------------------------------------------------------------- network
class PointNet2SSG(nn.Module):
    """ULIP-2 PointNet++ SSG encoder: xyz (B, N, 3) -> (B, 256) (after fc2, BN, ReLU, dropout)."""

    def __init__(self, cfg: PointNet2SSGConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PointNet2SSGConfig()
        cfg.validate()  # from_dict validates too; this catches configs built directly
        (n1, n2), (r1, r2), (k1, k2), (m1, m2) = cfg.npoints, cfg.radii, cfg.nsamples, cfg.sa_mlps
        self.sa1 = SetAbstraction(n1, r1, k1, 3, m1)
        self.sa2 = SetAbstraction(n2, r2, k2, m1[-1] + 3, m2)
        self.sa3 = SetAbstraction(None, None, None, m2[-1] + 3, cfg.global_mlp)
        self.fc1 = nn.Linear(cfg.global_mlp[-1], cfg.fc_dims[0])
        self.bn1 = nn.BatchNorm1d(cfg.fc_dims[0])
        self.drop1 = nn.Dropout(cfg.dropout)
        self.fc2 = nn.Linear(cfg.fc_dims[0], cfg.fc_dims[1])
        self.bn2 = nn.BatchNorm1d(cfg.fc_dims[1])
        self.drop2 = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.out_dim

    def _start(self, xyz: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        if not self.cfg.random_start:
            return None
        device = generator.device if generator is not None else xyz.device
        return torch.randint(0, xyz.shape[1], (xyz.shape[0],), generator=generator, device=device).to(
            xyz.device
        )

    def forward(self, xyz: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Features (B, fc_dims[-1]) of the clouds xyz (B, N, 3); `generator` draws the random FPS starts."""
        if xyz.dim() != 3 or xyz.shape[-1] != 3 or xyz.shape[1] < 1:
            raise ValueError(f"PointNet2SSG: expected points (B, N, 3), got {tuple(xyz.shape)}")
        l1_xyz, l1 = self.sa1(xyz, None, self._start(xyz, generator))
        l2_xyz, l2 = self.sa2(l1_xyz, l1, self._start(l1_xyz, generator))
        _, l3 = self.sa3(l2_xyz, l2)
        x = l3.flatten(1)
        x = self.drop1(F.relu(self.bn1(self.fc1(x))))
        return self.drop2(F.relu(self.bn2(self.fc2(x))))


# ---------------------------------------------------------------------------------------------- weights
def ulip2_pointnet2_ssg_state_dict(ckpt_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our PointNet2SSG state dict from a ULIP-2 PN++ SSG checkpoint's state dict
    (`module.point_encoder.*`)."""
    return ulip2_point_encoder_state_dict(ckpt_state_dict)


def load_teacher_weights(model: PointNet2SSG, path: str | Path) -> PointNet2SSG:
    """Load `path` into `model` (strict) and freeze it. Accepts the official ULIP-2 checkpoint
    (`pretrained_models_ckpt_zero-sho_classification_checkpoint_pointnet2_ssg.pt`), a `cleanpose teacher`
    file, or a bare state dict of this encoder. Errors name the file and the expected keys."""
    return load_point_encoder_file(model, path, "PointNet++ SSG teacher", ARCH)


def load_ulip2_pointnet2_ssg(path: str | Path, cfg: PointNet2SSGConfig | None = None) -> PointNet2SSG:
    """A frozen PointNet2SSG in eval mode (as queue initialisation runs it) with the weights of `path`."""
    return load_teacher_weights(PointNet2SSG(cfg), path).eval()
