"""A small PointNet that names an object's category from its depth points (Qi et al., "PointNet", CVPR 2017).

Shared per-point MLP (1x1 convolutions + BatchNorm + ReLU), max-pool, MLP head: (B, N, 3) camera-frame points
in metres -> (B, 6) logits over the NOCS categories. The points are centred but not rescaled, so metric size
stays a cue, which the RGB segmenter never sees. What it is for and how its scores are fused with the
segmenter's is `segmentation/rescoring.py`; its training is `train/point_classifier.py` (`cleanpose
train-classifier`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["MIN_POINTS", "NUM_CATEGORIES", "PointClassifierConfig", "PointNetClassifier"]

# fewer valid depth pixels than this: the shape says nothing, the object is not classified
MIN_POINTS = 16
NUM_CATEGORIES = 6   # the NOCS categories, in the order of cleanpose_core.NOCS_CATEGORIES


@dataclass
class PointClassifierConfig:
    """Network and training settings of the point-cloud category classifier; a classifier file records them
    all (the network is built from `widths`, `head` and `dropout`; `points` is drawn per object at inference
    too)."""

    widths: tuple[int, ...] = (64, 128, 256)  # shared per-point MLP (1x1 convs + BatchNorm + ReLU)
    head: tuple[int, ...] = (128,)            # hidden layers of the classification MLP
    dropout: float = 0.3
    points: int = 256                         # points per object, drawn from the mask's valid depth pixels
    iterations: int = 2000
    batch_size: int = 64
    lr: float = 1e-3                          # AdamW, cosine decay to 1 % over `iterations`
    weight_decay: float = 1e-4
    mask_jitter_px: int = 6                   # erode or dilate the mask by 0..this many pixels per draw
    noise_m: float = 0.003                    # Gaussian point noise (metres)
    val_fraction: float = 0.15                # share of object models held out for the validation accuracy
    source: str = "synthetic"                 # NOCSLayout source of --data: synthetic | camera | real
    split: str = "train"
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if not self.widths or min(self.widths) < 1 or any(h < 1 for h in self.head):
            raise ValueError("widths must be non-empty and every width >= 1")
        if self.points < MIN_POINTS or self.batch_size < 2 or self.iterations < 1:
            raise ValueError(f"points >= {MIN_POINTS}, batch_size >= 2 and iterations >= 1 are required")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("dropout and val_fraction must be in [0, 1)")
        if self.mask_jitter_px < 0 or self.noise_m < 0:
            raise ValueError("mask_jitter_px and noise_m must be >= 0")


class PointNetClassifier(nn.Module):
    """(B, N, 3) camera-frame points in metres -> (B, 6) category logits. Centres the points itself."""

    def __init__(self, cfg: PointClassifierConfig):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.widths:
            layers += [nn.Conv1d(c_in, c, 1, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.point_mlp = nn.Sequential(*layers)
        head: list[nn.Module] = []
        for h in cfg.head:
            head += [
                nn.Linear(c_in, h, bias=False),
                nn.BatchNorm1d(h),
                nn.ReLU(inplace=True),
                nn.Dropout(cfg.dropout),
            ]
            c_in = h
        head.append(nn.Linear(c_in, NUM_CATEGORIES))
        self.head = nn.Sequential(*head)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = (points - points.mean(dim=1, keepdim=True)).transpose(1, 2)
        return self.head(self.point_mlp(x).amax(dim=-1))
