"""Image branch: a 2D backbone giving a feature map, and per-point pixel features gathered from it.

Official code: `rgb_extractor` + `feature_mlp` in [CP model/Net.py]; architecture-facts §2.1. The paper
configuration uses DINOv2 ViT-S/14 (frozen; `torch.hub` `dinov2_vits14`), keeps its *pre-final-norm* patch
tokens (B, 256, 384) for a 224 x 224 crop, reshapes them to a 16 x 16 map, upsamples it bilinearly
(align_corners False) to 224 x 224, applies Conv1d(384 -> 128) to all 50,176 pixels and gathers the N chosen
pixels.

Differences from the official code:
- DINOv2 comes from timm (`vit_small_patch14_dinov2`, same weight layout) built at 224 px; the hub's
  37 x 37 position embedding is resampled once at load time exactly as the hub resamples it at every forward
  (bicubic, scale factor (16 + 0.1) / 37, no antialias), and the unused `mask_token` is dropped.
  The final LayerNorm is kept in the module (so the weight files load unchanged) but not applied.
- Only the N chosen pixels are interpolated (`gather_pixel_features`, bilinear at the pixel centres with
  border clamping = the upsampling rule), and the projection is applied after the gather. Both steps are
  linear and the bilinear weights sum to one, so this equals the official full-map computation
  (`test/models/test_image_backbone.py` checks it) at ~1/50 of the cost (50,176 -> N pixels).
- A small timm CNN trained from scratch (`kind: timm`) serves the lite configuration.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import timm
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ImageBackboneConfig",
    "DinoV2Backbone",
    "TimmCNNBackbone",
    "build_image_backbone",
    "gather_pixel_features",
    "dinov2_hub_to_timm",
    "DINOV2_HF_REPO",
]

DINOV2_TIMM_NAME = "vit_small_patch14_dinov2"
DINOV2_HF_REPO = "timm/vit_small_patch14_dinov2.lvd142m"  # timm's copy of the hub weights (safetensors)
DINOV2_HUB_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
HF_PREFIX = "hf-hub:"


@dataclass
class ImageBackboneConfig:
    kind: Literal["dinov2", "timm"] = "dinov2"  # dinov2: frozen ViT-S/14; timm: a CNN from `name`
    name: str = DINOV2_TIMM_NAME  # timm model name
    # Weights: a file path (hub .pth or timm .safetensors/.pth), "hf-hub:<repo>" looked up in the local
    # Hugging Face cache only (never downloaded), or null for random init (tests; CNNs trained from scratch).
    weights: str | None = HF_PREFIX + DINOV2_HF_REPO
    frozen: bool = True  # requires_grad False on every backbone parameter (official for DINOv2)
    image_size: int = 224  # side of the square RGB crop (px) that `choose` indexes
    input_size: int = 224  # side the crop is resized to before the backbone (px); < image_size is cheaper
    out_index: int = 2  # timm CNNs: which `features_only` level to use (2 = stride 8 for ResNets)
    out_dim: int = 128  # C2, channels of the gathered and projected per-point image features

    def validate(self) -> None:
        if self.image_size < 1 or self.input_size < 1 or self.out_dim < 1:
            raise ValueError("image_size, input_size and out_dim must be positive")
        if self.kind == "dinov2" and self.input_size % 14:
            raise ValueError(f"DINOv2 needs an input_size divisible by its patch 14, got {self.input_size}")


class DinoV2Backbone(nn.Module):
    """DINOv2 ViT-S/14 (timm) returning the pre-final-norm patch tokens as a feature map."""

    def __init__(self, input_size: int = 224):
        super().__init__()
        self.vit = timm.create_model(DINOV2_TIMM_NAME, pretrained=False, img_size=input_size, num_classes=0)
        self.grid = input_size // 14
        self.out_channels = self.vit.embed_dim

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, S, S), ImageNet-normalised -> (B, 384, S/14, S/14) pre-norm patch tokens."""
        v = self.vit
        x = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(rgb))))
        x = v.blocks(x)[:, v.num_prefix_tokens:]  # drop CLS; the final `v.norm` is deliberately skipped
        return x.transpose(1, 2).reshape(x.shape[0], -1, self.grid, self.grid)


class TimmCNNBackbone(nn.Module):
    """One feature level of a timm CNN (`features_only`), e.g. ResNet-18 up to layer2 (stride 8)."""

    def __init__(self, name: str, out_index: int):
        super().__init__()
        self.net = timm.create_model(name, pretrained=False, features_only=True, out_indices=(out_index,))
        self.out_channels = self.net.feature_info.channels()[0]

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, S, S) -> (B, C_img, h, w)."""
        return self.net(rgb)[0]


class ImageEncoder(nn.Module):
    """Backbone plus the input resize: (B, 3, image_size, image_size) -> feature map (B, C_img, h, w)."""

    def __init__(self, cfg: ImageBackboneConfig):
        super().__init__()
        self.input_size = cfg.input_size
        self.backbone = DinoV2Backbone(cfg.input_size) if cfg.kind == "dinov2" else TimmCNNBackbone(cfg.name,
                                                                                                    cfg.out_index)
        self.out_channels = self.backbone.out_channels

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.shape[-1] != self.input_size or rgb.shape[-2] != self.input_size:
            rgb = F.interpolate(
                rgb, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.backbone(rgb)


def gather_pixel_features(feat_map: torch.Tensor, choose: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bilinear features of chosen pixels, equal to upsampling `feat_map` to the image grid then indexing.

    Args:
        feat_map: (B, C, h, w) feature map covering the (image_size x image_size) crop.
        choose: (B, N) flat pixel indices row * image_size + col into the crop.
        image_size: side of the crop in pixels.

    Returns:
        (B, C, N): `F.interpolate(feat_map, (image_size, image_size), mode="bilinear", align_corners=False)`
        at the chosen pixels, computed without the full-size map.
    """
    if choose.dim() != 2 or choose.shape[0] != feat_map.shape[0]:
        raise ValueError(f"choose must be (B, N) with B = {feat_map.shape[0]}, got {tuple(choose.shape)}")
    if choose.numel() and (int(choose.min()) < 0 or int(choose.max()) >= image_size * image_size):
        raise ValueError(
            f"choose indices must lie in [0, {image_size * image_size}) for a {image_size}^2 crop"
        )
    row = torch.div(choose, image_size, rounding_mode="floor")
    col = choose - row * image_size
    # Pixel centres in grid_sample's normalised coordinates; with align_corners False and border padding,
    # grid_sample maps them to the same source positions (clamped at the edges) as the bilinear upsampling.
    grid = torch.stack([col, row], dim=2).to(feat_map.dtype).add_(0.5).mul_(2.0 / image_size).sub_(1.0)
    out = F.grid_sample(
        feat_map, grid.unsqueeze(1), mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.squeeze(2)  # (B, C, N)


# ---------------------------------------------------------------------------------------------------------
# Weight conversion and loading


def dinov2_hub_to_timm(state: dict[str, torch.Tensor], grid: int = 16,
                       interpolate_offset: float = 0.1) -> dict[str, torch.Tensor]:
    """Map a DINOv2 ViT-S/14 state dict (torch.hub layout, or timm's 518-px copy) onto our 224-px timm ViT.

    Drops `mask_token` (unused without masking) and resamples the patch position embedding from its
    M x M grid to `grid` x `grid` exactly as the hub's `interpolate_pos_encoding` does at every forward:
    bicubic, scale factor (grid + interpolate_offset) / M, no antialias, computed in float32.
    """
    out = {k: v for k, v in state.items() if k != "mask_token"}
    pos = out.get("pos_embed")
    if pos is None:
        raise KeyError("DINOv2 state dict has no 'pos_embed'; is this a DINOv2 ViT checkpoint?")
    n = pos.shape[1] - 1
    m = int(round(math.sqrt(n)))
    if m * m != n:
        raise ValueError(f"pos_embed has {n} patch positions, not a square grid")
    if m != grid:
        patch = pos[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
        scale = (grid + interpolate_offset) / m
        patch = F.interpolate(patch, scale_factor=(scale, scale), mode="bicubic", antialias=False)
        if patch.shape[-1] != grid:
            raise ValueError(f"resampling {m}x{m} gave {tuple(patch.shape[-2:])}, expected {grid}x{grid}")
        patch = patch.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos.dtype)
        out["pos_embed"] = torch.cat([pos[:, :1], patch], dim=1)
    return out


def resolve_weights(spec: str) -> Path:
    """Path of a weight file named by a path or "hf-hub:<repo>" (local Hugging Face cache only).

    Raises:
        FileNotFoundError: naming what to download and where to put it.
    """
    if spec.startswith(HF_PREFIX):
        repo = spec[len(HF_PREFIX):]
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(hf_hub_download(repo, "model.safetensors", local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
            cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
            raise FileNotFoundError(
                f"image backbone weights '{spec}' are not in the local Hugging Face cache ({cache}). "
                f"On a machine with internet run `huggingface-cli download {repo} model.safetensors` "
                f"(then copy the cache, or set HF_HOME to it), or download {DINOV2_HUB_URL} and set "
                f"model.image.weights to that file's path.") from exc
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"image backbone weights not found: {path} (download {DINOV2_HUB_URL} for "
                                f"DINOv2 ViT-S/14, or set model.image.weights to null for random weights)")
    return path


def load_image_weights(encoder: ImageEncoder, cfg: ImageBackboneConfig) -> None:
    """Load `cfg.weights` into the backbone (DINOv2 through `dinov2_hub_to_timm`); strict key check."""
    from ..io.artefacts import load_state_dict_file

    path = resolve_weights(cfg.weights)
    state = load_state_dict_file(path, "image backbone")
    if cfg.kind == "dinov2":
        state = dinov2_hub_to_timm(state, grid=encoder.backbone.grid)
        target = encoder.backbone.vit
    else:
        target = encoder.backbone.net
    target.load_state_dict(state, strict=True)


def build_image_backbone(cfg: ImageBackboneConfig, load_weights: bool = True) -> ImageEncoder:
    """The image encoder of `cfg`, with its weights loaded (if named and `load_weights`) and frozen (if
    asked)."""
    encoder = ImageEncoder(cfg)
    if cfg.weights is not None and load_weights:
        load_image_weights(encoder, cfg)
    if cfg.frozen:
        encoder.requires_grad_(False)
    return encoder
