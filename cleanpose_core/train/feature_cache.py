"""Optional cache of teacher features keyed by sample id, to skip the teacher's forward pass.

**An approximation, off by default.** The official teacher runs online at every step in *train* mode on the
student's input, i.e. on the centred points *after* the random rotation/translation/scale augmentation
(architecture-facts §0.7, §2.7), so every step's target differs. A cache stores one feature per sample,
computed once in eval mode on the centred, un-augmented points; the KD target then no longer follows the
augmentation (nor the teacher's BatchNorm batch statistics and DropPath). Use it only where the teacher's cost
dominates (the paper-size PointBERT on CPU) and say so with the results.

Keys are strings chosen by the reader (for NOCS: image prefix + instance id); values are (C,) float16 on CPU
(half the memory; the KD loss is computed in float32). The file is ``{"format": io.FEATURE_CACHE_FORMAT,
"dim": C, "keys": [...], "features": (M, C) float16}``, written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from ..io import FEATURE_CACHE_FORMAT, WeightsError, read_artefact, save_artefact

__all__ = ["TeacherFeatureCache"]


class TeacherFeatureCache:
    """In-memory map sample id -> teacher feature (C,), with batch lookup and atomic save/load."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._rows: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def put(self, keys: Sequence[str], features: torch.Tensor) -> None:
        """Store `features` (B, C) under `keys` (B,); existing keys are overwritten."""
        if features.dim() != 2 or features.shape[1] != self.dim or features.shape[0] != len(keys):
            raise ValueError(f"features must be ({len(keys)}, {self.dim}), got {tuple(features.shape)}")
        for k, f in zip(keys, features.detach().to("cpu", torch.float16)):
            self._rows[str(k)] = f.clone()

    def get(self, keys: Sequence[str],
            device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, C) float32 for `keys` and a (B,) bool mask of hits; missing rows are zeros."""
        out = torch.zeros(len(keys), self.dim)
        hit = torch.zeros(len(keys), dtype=torch.bool)
        for i, k in enumerate(keys):
            row = self._rows.get(str(k))
            if row is not None:
                out[i], hit[i] = row.float(), True
        return out.to(device), hit.to(device)

    @torch.no_grad()
    def fill(self, teacher: nn.Module, batches: Iterable[tuple[Sequence[str], torch.Tensor]],
             device: str | torch.device = "cpu") -> int:
        """Run `teacher` (eval mode) on (keys, points (B, N, 3) metres) batches not yet cached.

        The points are centred here, as the network centres its input; returns the number of new rows.
        """
        teacher.eval().to(device)
        added = 0
        for keys, pts in batches:
            todo = [i for i, k in enumerate(keys) if str(k) not in self._rows]
            if not todo:
                continue
            p = pts[todo].to(device, torch.float32)
            p = p - p.mean(dim=1, keepdim=True)
            self.put([keys[i] for i in todo], teacher(p).float())
            added += len(todo)
        return added

    def save(self, path: str | Path) -> Path:
        keys = sorted(self._rows)
        feats = (torch.stack([self._rows[k] for k in keys]) if keys
                 else torch.zeros(0, self.dim, dtype=torch.float16))
        return save_artefact(path, FEATURE_CACHE_FORMAT, dim=self.dim, keys=keys, features=feats)

    @classmethod
    def load(cls, path: str | Path) -> "TeacherFeatureCache":
        """The cache saved in `path`. Raises WeightsError when the file is missing (WeightsNotFoundError),
        unreadable, not a feature cache, or its keys and features disagree."""
        blob = read_artefact(path, FEATURE_CACHE_FORMAT)
        feats, keys = blob.get("features"), blob.get("keys")
        dim = blob.get("dim")
        if (not isinstance(feats, torch.Tensor) or not isinstance(keys, list) or not isinstance(dim, int)
                or feats.dim() != 2 or feats.shape != (len(keys), dim)):
            found = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise WeightsError(f"{path}: a feature cache needs 'features' of shape (len(keys), dim) = "
                               f"({len(keys) if isinstance(keys, list) else '?'}, {dim}); found {found}")
        cache = cls(dim)
        cache._rows = {k: f for k, f in zip(keys, feats)}
        return cache
