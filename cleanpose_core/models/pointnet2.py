"""PointNet++ MSG point encoder of CleanPose / AG-Pose (per-point geometry features, C1 = 128 channels).

Paper: CleanPose §4.1 ("PointNet++ [Qi et al. 2017]"). Official code: `Pointnet2MSG` in [CP model/modules.py]
on Erik Wijmans' `pointnet2_ops` modules (`PointnetSAModuleMSG`, `PointnetFPModule`, `SharedMLP` of
`utils/pytorch_utils.py`); architecture-facts §2.2. Reproduced exactly: 4 multi-scale set-abstraction levels
(FPS centres, ball query, grouped xyz relative to the centre and not divided by the radius, concatenated
first; SharedMLP; max-pool; scales concatenated), 4 feature-propagation levels (3-NN inverse-distance
interpolation, skip features appended after the interpolated ones), every SharedMLP layer a bias-free 1x1
Conv2d with Kaiming-normal init, BatchNorm and ReLU (the last layer included). Trainable parameters at the
paper configuration: 1,307,808, as measured on the official network.

What differs and why:
- The ops are the pure-PyTorch ports in `cleanpose_core.ops` (CUDA kernels when installed), with the kernels'
  semantics (FPS from index 0 skipping near-origin points; index-order ball-query fill).
- Each SA level computes the centre-to-point squared distances once and reuses them for all its radii; the
  official code runs one ball query kernel per radius. Same indices, less work on CPU.
- Where the first 1x1 conv of a scale narrows the channels (levels 1-3), it is applied to the N input points
  before grouping instead of to the S x k grouped copies (a 1x1 conv commutes with gathering; the centre term
  is subtracted after). Same function up to float rounding, about a quarter fewer multiply-adds.
- The 1x1 convs run as batched matmuls (`PointwiseConv2d`), faster than oneDNN's convolution on CPU here.
- `sa_mlps` may give one width list per level (shared by its scales, as every official level is) or one per
  scale; the official constructor takes per-scale lists including the input width, which we derive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..ops import (ball_queries, furthest_point_sample, group_points, index_points, inverse_distance_weights,
                   three_interpolate, three_nn)

__all__ = ["PointNet2MSGConfig", "PointNet2MSG", "PointwiseConv2d", "SharedMLP", "SetAbstractionMSG",
           "FeaturePropagation"]

Widths = tuple[int, ...]


# ---------------------------------------------------------------------------------------------- config
@dataclass
class PointNet2MSGConfig:
    """PointNet++ MSG layout; the defaults are the official values (hard-coded in [CP model/Net.py])."""

    npoints: tuple[int, ...] = (512, 256, 128, 64)  # FPS centres per SA level (input: 1024 points)
    # Ball radii per level and scale, metres (the input is the centred object cloud in metres).
    radii: tuple[tuple[float, ...], ...] = ((0.01, 0.02), (0.02, 0.04), (0.04, 0.08), (0.08, 0.16))
    nsamples: tuple[tuple[int, ...], ...] = ((16, 32), (16, 32), (16, 32), (16, 32))  # ball slots per scale
    # SharedMLP widths per level, excluding the input width (previous level's channels + 3 for xyz): one list
    # shared by every scale of the level, or one list per scale. Level outputs: 64, 128, 256, 512 channels.
    sa_mlps: tuple[Widths, ...] | tuple[tuple[Widths, ...], ...] = (
        (16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128, 256))
    # Feature-propagation widths FP0..FP3 excluding the input; FP_i maps level i+1 to level i, FP0's
    # last width is the output channel count C1.
    fp_mlps: tuple[Widths, ...] = ((128, 128), (256, 256), (256, 256), (512, 512))
    # concatenate relative xyz to the grouped features (needed: the input has no features)
    use_xyz: bool = True

    def __post_init__(self) -> None:
        # Canonical form: one width tuple per scale (a shared list is repeated for each of the level's radii).
        per_scale = []
        for level, spec in enumerate(self.sa_mlps):
            spec = tuple(spec)
            if spec and all(isinstance(w, int) for w in spec):
                n_scales = len(self.radii[level]) if level < len(self.radii) else 1
                spec = (spec,) * n_scales
            per_scale.append(tuple(tuple(w) for w in spec))
        self.sa_mlps = tuple(per_scale)

    def validate(self) -> None:
        levels = len(self.npoints)
        if levels < 1:
            raise ValueError("npoints: at least one set-abstraction level is needed")
        for name in ("radii", "nsamples", "sa_mlps", "fp_mlps"):
            if len(getattr(self, name)) != levels:
                raise ValueError(f"{name}: expected {levels} levels (one per npoints entry), "
                                 f"got {len(getattr(self, name))}")
        for i in range(levels):
            scales = len(self.radii[i])
            if scales < 1 or len(self.nsamples[i]) != scales or len(self.sa_mlps[i]) != scales:
                raise ValueError(
                    f"level {i}: radii, nsamples and sa_mlps need the same number (>= 1) of scales, "
                    f"got {len(self.radii[i])}, {len(self.nsamples[i])}, {len(self.sa_mlps[i])}"
                )
            if (
                self.npoints[i] < 1
                or any(r <= 0 for r in self.radii[i])
                or any(k < 1 for k in self.nsamples[i])
            ):
                raise ValueError(f"level {i}: npoints, radii (m) and nsamples must be positive")
            if any(len(w) < 1 or min(w) < 1 for w in self.sa_mlps[i]) or len(self.fp_mlps[i]) < 1 \
                    or min(self.fp_mlps[i]) < 1:
                raise ValueError(f"level {i}: MLP widths must be non-empty lists of positive integers")
        if not self.use_xyz:
            raise ValueError(
                "use_xyz: false leaves the first level without inputs (this encoder takes xyz only)"
            )

    @property
    def sa_out_channels(self) -> tuple[int, ...]:
        """Channels of each SA level's output (its scales concatenated)."""
        return tuple(sum(w[-1] for w in level) for level in self.sa_mlps)

    @property
    def out_channels(self) -> int:
        return self.fp_mlps[0][-1]


# ---------------------------------------------------------------------------------------------- blocks
class PointwiseConv2d(nn.Conv2d):
    """A 1x1 Conv2d computed as one batched matmul over the flattened map (same parameters and result).

    On CPU, oneDNN's 1x1 convolution on the thin (B, 3..16, S, k) maps of the first levels is several times
    slower than a matmul; `bmm` with the weight expanded over the batch avoids the transposed copies that
    `matmul` makes when broadcasting a 2-D weight (measured on the whole network: about 1/3 less CPU time).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, *spatial = x.shape
        w = self.weight.view(self.out_channels, self.in_channels)
        y = torch.bmm(w.expand(b, -1, -1), x.reshape(b, self.in_channels, -1))
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1)
        return y.view(b, self.out_channels, *spatial)


class SharedMLP(nn.Sequential):
    """Per-point MLP on (B, C, S, k) maps: [1x1 Conv2d (no bias, Kaiming-normal), BatchNorm2d, ReLU] per
    layer."""

    def __init__(self, widths: Sequence[int]):
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            conv = PointwiseConv2d(c_in, c_out, bias=False)
            # official `init=nn.init.kaiming_normal_` (fan_in, gain sqrt 2)
            nn.init.kaiming_normal_(conv.weight)
            layers += [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)

    def forward_after_first_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP from the first BatchNorm on, for an input the first conv was already applied to."""
        for layer in list(self)[1:]:
            x = layer(x)
        return x


class SetAbstractionMSG(nn.Module):
    """One multi-scale set-abstraction level: FPS centres, per-scale ball grouping + SharedMLP + max-pool."""

    def __init__(self, npoint: int, radii: Sequence[float], nsamples: Sequence[int],
                 mlps: Sequence[Sequence[int]], in_channels: int, use_xyz: bool = True):
        super().__init__()
        self.npoint, self.radii, self.nsamples, self.use_xyz = npoint, tuple(radii), tuple(nsamples), use_xyz
        c_in = in_channels + (3 if use_xyz else 0)
        self.mlps = nn.ModuleList(SharedMLP([c_in, *w]) for w in mlps)
        self.out_channels = sum(w[-1] for w in mlps)
        # Apply the first 1x1 conv before grouping where it narrows the channels (same result, less work);
        # a switch so tests can compare with the literal official order.
        self.project_first = True

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """xyz (B, N, 3) m, features (B, C, N) or None -> centres (B, S, 3), features (B, C_out, S)."""
        new_xyz, idxs = self.geometry(xyz)
        return new_xyz, self.features(xyz, new_xyz, idxs, features)

    def geometry(self, xyz: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The level's index computation, which depends on the coordinates only: xyz (B, N, 3) -> FPS centres
        (B, S, 3) and, per scale, the ball-query neighbour indices (B, S, k)."""
        new_xyz = index_points(xyz, furthest_point_sample(xyz, self.npoint))
        return new_xyz, ball_queries(xyz, new_xyz, self.radii, self.nsamples)

    def features(self, xyz: torch.Tensor, new_xyz: torch.Tensor, idxs: Sequence[torch.Tensor],
                 features: torch.Tensor | None) -> torch.Tensor:
        """Grouping, SharedMLPs and max-pools of the level, given its `geometry`: (B, C_out, S)."""
        xyz_t = xyz.transpose(1, 2)
        centre = new_xyz.transpose(1, 2).unsqueeze(-1)  # (B, 3, S, 1)
        outputs = []
        for idx, mlp in zip(idxs, self.mlps):
            if self.project_first and mlp[0].in_channels > mlp[0].out_channels:
                x = self._project_then_group(mlp[0], xyz_t, centre, features, idx)
                outputs.append(mlp.forward_after_first_conv(x).amax(dim=-1))
            else:
                outputs.append(mlp(self._group(xyz_t, centre, features, idx)).amax(dim=-1))
        return torch.cat(outputs, dim=1)

    def _group(self, xyz_t: torch.Tensor, centre: torch.Tensor, features: torch.Tensor | None,
               idx: torch.Tensor) -> torch.Tensor:
        """The official grouped input (B, 3 + C, S, k): relative xyz first (not divided by the radius)."""
        parts = [group_points(xyz_t, idx) - centre] if self.use_xyz else []
        if features is not None:
            parts.append(group_points(features, idx))
        return torch.cat(parts, dim=1)

    def _project_then_group(self, conv: PointwiseConv2d, xyz_t: torch.Tensor, centre: torch.Tensor,
                            features: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor:
        """conv(_group(...)) computed as grouping of the projected points: W [p_j - c ; f_j] = W p_j + W f_j -
        W c.

        The first 1x1 conv then runs on N points instead of S x k grouped ones (4-12x fewer at the official
        sizes; about a quarter of the network's multiply-adds), and the gather moves fewer channels.
        """
        w = conv.weight.view(conv.out_channels, conv.in_channels)
        b = xyz_t.shape[0]
        w_xyz, w_feat = (w[:, :3], w[:, 3:]) if self.use_xyz else (None, w)
        projected = 0
        if w_xyz is not None:
            projected = torch.bmm(w_xyz.expand(b, -1, -1), xyz_t)
        if features is not None:
            projected = projected + torch.bmm(w_feat.expand(b, -1, -1), features)
        x = group_points(projected, idx)  # (B, C1, S, k)
        if w_xyz is not None:
            x = x - torch.bmm(w_xyz.expand(b, -1, -1), centre.squeeze(-1)).unsqueeze(-1)
        return x


class FeaturePropagation(nn.Module):
    """Upsampling: 3-NN inverse-distance interpolation of coarse features, skip features appended,
    SharedMLP."""

    def __init__(self, widths: Sequence[int]):
        super().__init__()
        self.mlp = SharedMLP(widths)

    def forward(self, unknown: torch.Tensor, known: torch.Tensor, unknown_feats: torch.Tensor | None,
                known_feats: torch.Tensor) -> torch.Tensor:
        """unknown (B, n, 3), known (B, m, 3) m; unknown_feats (B, C1, n) or None, known_feats (B, C2, m)
        -> (B, C_out, n)."""
        return self.features(*self.geometry(unknown, known), unknown_feats, known_feats)

    @staticmethod
    def geometry(unknown: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3 nearest known points of every unknown one and their weights, (B, n, 3) each."""
        dist, idx = three_nn(unknown, known)
        return idx, inverse_distance_weights(dist)

    def features(self, idx: torch.Tensor, weight: torch.Tensor, unknown_feats: torch.Tensor | None,
                 known_feats: torch.Tensor) -> torch.Tensor:
        x = three_interpolate(known_feats, idx, weight)
        if unknown_feats is not None:
            x = torch.cat([x, unknown_feats], dim=1)  # interpolated first, as the official module
        return self.mlp(x.unsqueeze(-1)).squeeze(-1)


# ---------------------------------------------------------------------------------------------- network
class PointNet2MSG(nn.Module):
    """PointNet++ MSG encoder-decoder: xyz (B, N, 3) in metres -> per-point features (B, C1, N)."""

    def __init__(self, cfg: PointNet2MSGConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PointNet2MSGConfig()
        cfg.validate()  # from_dict validates too; this catches configs built directly
        self.sa_modules = nn.ModuleList()
        c_in = 0  # no input features besides xyz
        for npoint, radii, nsamples, mlps in zip(cfg.npoints, cfg.radii, cfg.nsamples, cfg.sa_mlps):
            self.sa_modules.append(SetAbstractionMSG(npoint, radii, nsamples, mlps, c_in, cfg.use_xyz))
            c_in = self.sa_modules[-1].out_channels
        sa_out = cfg.sa_out_channels
        levels = len(sa_out)
        fp_in = [0] * levels
        for i in reversed(range(levels)):  # FP_i: coarse features of level i+1 + skip features of level i
            coarse = cfg.fp_mlps[i + 1][-1] if i + 1 < levels else sa_out[-1]
            fp_in[i] = coarse + (sa_out[i - 1] if i >= 1 else 0)
        self.fp_modules = nn.ModuleList(
            FeaturePropagation([fp_in[i], *cfg.fp_mlps[i]]) for i in range(levels)
        )
        self.out_channels = cfg.out_channels
        # Eval only: a replacement of `features` (the inference runtime's ONNX Runtime graph of it,
        # `inference/runtime.py`); None = `features` itself.
        self.inference_features: nn.Module | None = None

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        """Per-point features (B, C1, N) of the points xyz (B, N, 3) (metres, centred on the object)."""
        if xyz.dim() != 3 or xyz.shape[-1] != 3 or xyz.shape[1] < 1:
            raise ValueError(f"PointNet2MSG: expected points (B, N, 3), got {tuple(xyz.shape)}")
        geometry = self.geometry(xyz)
        if not self.training and self.inference_features is not None:
            return self.inference_features(xyz, *geometry)
        return self.features(xyz, *geometry)

    def geometry(self, xyz: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every index computation of the network (furthest-point sampling, ball queries, 3-NN), which depends
        on the coordinates only, as one flat tuple: the centres of each SA level (B, S_i, 3), the ball-query
        indices of each level's scales (B, S_i, k), then per FP module its 3-NN indices and weights (B, n, 3).
        """
        l_xyz, ball = [xyz], []
        for sa in self.sa_modules:
            new_xyz, idxs = sa.geometry(l_xyz[-1])
            l_xyz.append(new_xyz)
            ball += idxs
        interpolation = []
        for i in range(len(self.fp_modules)):
            interpolation += FeaturePropagation.geometry(l_xyz[i], l_xyz[i + 1])
        return (*l_xyz[1:], *ball, *interpolation)

    def features(self, xyz: torch.Tensor, *geometry: torch.Tensor) -> torch.Tensor:
        """The network's feature computation given its `geometry` (gathers, SharedMLPs, pooling,
        interpolation: no index computation), (B, C1, N). A runtime can run it as one graph
        (`inference_features`)."""
        levels = len(self.sa_modules)
        l_xyz = [xyz, *geometry[:levels]]
        rest = list(geometry[levels:])
        l_feats: list[torch.Tensor | None] = [None]
        for i, sa in enumerate(self.sa_modules):
            idxs, rest = rest[:len(sa.radii)], rest[len(sa.radii):]
            l_feats.append(sa.features(l_xyz[i], l_xyz[i + 1], idxs, l_feats[-1]))
        feats = l_feats[-1]
        for i in reversed(range(len(self.fp_modules))):
            idx, weight = rest[2 * i], rest[2 * i + 1]
            feats = self.fp_modules[i].features(idx, weight, l_feats[i], feats)
        return feats
