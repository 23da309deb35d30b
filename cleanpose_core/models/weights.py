"""Reading weight files written by other projects (DINOv2, ULIP-2, ...) safely and with clear errors.

Every foreign file goes through `torch.load(..., weights_only=True)`: tensors and plain containers only, no
pickled code. `argparse.Namespace` is also admitted: research training scripts (ULIP's `main.py` among them)
store their command-line arguments next to the weights, and a Namespace only holds plain values. Errors name
the file and what it was meant to hold, so a user knows what to download and where, instead of meeting a
KeyError deep inside `load_state_dict`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["WeightsError", "read_weights_file", "unwrap_state_dict", "load_state_dict_file", "strip_prefix",
           "select_prefix", "load_strict"]

# Keys under which training scripts commonly nest the state dict (ULIP/SLIP: "state_dict"; others: "model").
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


class WeightsError(ValueError):
    """A weights file is unreadable or does not fit the model; the message names the file and the keys."""


def read_weights_file(path: str | Path, what: str) -> Any:
    """The object stored in `path` (loaded on CPU with weights_only=True).

    Raises:
        FileNotFoundError: no such file (message names `what`).
        WeightsError: the file is not a readable torch file (truncated, not a checkpoint, pickled code).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: weights file not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle errors differ by torch version and by how the file is broken
        raise WeightsError(
            f"{what}: cannot read {path} as a torch weights file (corrupt, truncated, not a checkpoint, or holding "
            f"Python objects other than tensors and plain containers; re-save just its state dict with "
            f"torch.save if you trust its source): {type(exc).__name__}: {str(exc)[:300]}") from exc


def unwrap_state_dict(obj: Any, path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside `obj`: `obj` itself or its 'state_dict' / 'model' / 'model_state_dict' entry."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
    found = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(f"{what}: {path} holds no state dict (expected a mapping of tensors, possibly under "
                       f"one of {list(_WRAPPER_KEYS)}); found {found}")


def load_state_dict_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The state dict stored in `path`, unwrapped from a training checkpoint if needed (see `unwrap_state_dict`)."""
    return unwrap_state_dict(read_weights_file(path, what), path, what)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """`state` with `prefix` removed from the keys that start with it (others unchanged), e.g. DDP's 'module.'."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def select_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Only the keys starting with `prefix`, with the prefix removed (a sub-module's subset)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _preview(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str | Path) -> None:
    """Load `state` into `module`, requiring exactly its parameter and buffer keys with matching shapes.

    Raises:
        WeightsError: naming `source`, the missing and unexpected keys, and the first shape mismatches.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_preview(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches (file vs model): {_preview(mismatched, 4)}")
        raise WeightsError(f"{what}: {source} does not fit the model ({len(own)} expected keys such as "
                           f"{_preview(list(own), 3)}); " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
