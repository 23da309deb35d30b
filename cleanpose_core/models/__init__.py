"""Networks: the CleanPose model (`cleanpose.py`), its blocks, heads, losses, backbones and teachers.

`build_model(cfg)` builds the network of a `CleanPoseConfig` (config/model/*.yaml). Imported lazily so that
using one block (e.g. the attention layers) does not import every backbone.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_model", "CleanPose", "CleanPoseConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import cleanpose

        return getattr(cleanpose, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
