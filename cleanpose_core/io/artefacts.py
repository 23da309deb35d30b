"""Weight files and other saved artefacts: their format tags, atomic writing, safe reading, one error class.

Reading: every file goes through `torch.load(..., weights_only=True)`: tensors and plain containers only, no
pickled code. `argparse.Namespace` is also admitted: research training scripts (ULIP's `main.py` among them)
store their command-line arguments next to the weights, and a Namespace only holds plain values. Errors name
the file and what it was meant to hold, so a user knows what to download and where, instead of meeting a
KeyError deep inside `load_state_dict`.

Our own artefacts are dicts whose "format" entry names their kind and version (`FORMATS`); the tag strings are
those of the files already shipped in `models/` and written by earlier runs, so they must never change for an
existing layout. Writing goes through `atomic_save`, so a crash mid-write leaves the previous file intact.

This module imports nothing of the project: the networks' own loaders (`models/teachers`, the image backbone)
read their foreign checkpoints through it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["WeightsError", "WeightsNotFoundError", "ArtefactFormat", "FORMATS", "MODEL_FORMAT",
           "CHECKPOINT_FORMAT", "MASKRCNN_FORMAT", "CLASSIFIER_FORMAT", "TEACHER_FORMAT",
           "FEATURE_CACHE_FORMAT", "QUEUE_FORMAT", "ONNX_FORMAT", "atomic_save", "save_artefact",
           "read_weights_file", "describe_contents", "check_format", "read_artefact", "unwrap_state_dict",
           "load_state_dict_file",
           "strip_prefix", "select_prefix", "load_strict", "frozen_prefixes", "trainable_state_dict",
           "load_trainable_state_dict"]


class WeightsError(ValueError):
    """A weights file is missing, unreadable, of another kind, or does not fit the model; names the file."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The file does not exist. Also a FileNotFoundError, which is what callers caught before there was one
    error class for every artefact."""


# ----------------------------------------------------------------------------------------------------------
# Format tags


@dataclass(frozen=True)
class ArtefactFormat:
    tag: str         # the file's "format" entry
    what: str        # the artefact's name in error messages
    written_by: str  # how to make one, told to a user who passed a file of another kind


MODEL_FORMAT = "cleanpose-model-1"  # pose network weights + model config (model_final.pt)
CHECKPOINT_FORMAT = "cleanpose-train-1"  # a training run to continue (`checkpoint.py` in this package)
MASKRCNN_FORMAT = "cleanpose-maskrcnn-1"  # deployable Mask R-CNN weights + architecture
CLASSIFIER_FORMAT = "cleanpose-point-classifier-1"  # the point-cloud category classifier
TEACHER_FORMAT = "cleanpose-teacher-1"  # a frozen teacher encoder (PointBERT / PointNet++ SSG)
FEATURE_CACHE_FORMAT = "cleanpose-featcache-1"  # cached teacher features per sample id
QUEUE_FORMAT = "cleanpose-queue-1"  # the initial confounder queue
ONNX_FORMAT = "cleanpose-onnx-1"  # a network part for ONNX Runtime (`onnx_artefacts.py`; ONNX, not torch)

FORMATS: dict[str, ArtefactFormat] = {f.tag: f for f in (
    ArtefactFormat(MODEL_FORMAT, "CleanPose model", "`cleanpose train` (model_final.pt)"),
    ArtefactFormat(CHECKPOINT_FORMAT, "CleanPose training checkpoint",
                   "`cleanpose train` or `cleanpose train-seg` while training"),
    ArtefactFormat(MASKRCNN_FORMAT, "Mask R-CNN weights", "`cleanpose train-seg`"),
    ArtefactFormat(CLASSIFIER_FORMAT, "point classifier", "`cleanpose train-classifier`"),
    ArtefactFormat(TEACHER_FORMAT, "CleanPose teacher",
                   "`cleanpose teacher` (or `cleanpose teacher --arch ARCH --ulip2 CKPT` for ULIP-2)"),
    ArtefactFormat(FEATURE_CACHE_FORMAT, "teacher feature cache", "`TeacherFeatureCache.save`"),
    ArtefactFormat(QUEUE_FORMAT, "confounder queue", "`cleanpose queue-init`"),
    ArtefactFormat(ONNX_FORMAT, "ONNX Runtime export", "`cleanpose export`"),
)}


# ----------------------------------------------------------------------------------------------------------
# Writing


def atomic_save(obj: Any, path: str | Path) -> Path:
    """`torch.save(obj)` to `path` through a temporary file and `os.replace`.

    Either the old file or the complete new one exists at `path` at any time; the temporary file is removed if
    writing fails. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Make the rename itself durable (POSIX); harmless where directories cannot be opened.
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def save_artefact(path: str | Path, fmt: str, **contents: Any) -> Path:
    """Atomically write ``{"format": fmt, **contents}``; `fmt` must be one of `FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown artefact format {fmt!r}; known: {sorted(FORMATS)}")
    return atomic_save({"format": fmt, **contents}, path)


# ----------------------------------------------------------------------------------------------------------
# Reading


def read_weights_file(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """The object stored in `path`, loaded with weights_only=True (on CPU unless `map_location` says).

    Raises:
        WeightsNotFoundError: no such file (message names `what`).
        WeightsError: the file is not a readable torch file (truncated, not a checkpoint, pickled code).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"{what}: weights file not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip/pickle errors differ by torch version and by how the file is broken
        raise WeightsError(
            f"{what}: {path} is unreadable as a torch weights file (corrupt, truncated, not a checkpoint, or "
            f"holding Python objects other than tensors and plain containers; re-save just its state dict "
            f"with torch.save if you trust its source): {type(exc).__name__}: {str(exc)[:300]}") from exc


def describe_contents(obj: Any) -> str:
    """What a file holds, for 'found ...' in error messages: its format tag, its keys or its type."""
    if isinstance(obj, Mapping):
        tag = obj.get("format")
        if isinstance(tag, str):
            known = FORMATS.get(tag)
            return f"format {tag!r}" + (f" (a {known.what} file)" if known else "")
        return f"keys {sorted(map(str, obj))[:8]}"
    return type(obj).__name__


def check_format(obj: Any, fmt: str, path: str | Path) -> dict[str, Any]:
    """`obj` (read from `path`) if it is a dict tagged `fmt`; otherwise WeightsError saying what it is."""
    if isinstance(obj, dict) and obj.get("format") == fmt:
        return obj
    kind = FORMATS[fmt]
    raise WeightsError(f"{path} is not a {kind.what} file (format {fmt!r}, written by {kind.written_by}); "
                       f"found {describe_contents(obj)}")


def read_artefact(path: str | Path, fmt: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict stored in a file of format `fmt` (see `read_weights_file` and `check_format` for errors)."""
    return check_format(read_weights_file(path, FORMATS[fmt].what, map_location), fmt, path)


# ----------------------------------------------------------------------------------------------------------
# State dicts of foreign checkpoints

# Keys under which training scripts commonly nest the state dict (ULIP/SLIP: "state_dict"; others: "model").
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def _tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any, path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside `obj`: `obj` itself or its 'state_dict' / 'model' / 'model_state_dict'
    entry."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if _tensor_mapping(inner):
                return dict(inner)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
    found = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(f"{what}: {path} holds no state dict (expected a mapping of tensors, possibly under "
                       f"one of {list(_WRAPPER_KEYS)}); found {found}")


def load_state_dict_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The state dict stored in `path`, unwrapped from a training checkpoint if needed."""
    return unwrap_state_dict(read_weights_file(path, what), path, what)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """`state` with `prefix` removed from the keys that start with it (others unchanged): DDP's 'module.'."""
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


# ----------------------------------------------------------------------------------------------------------
# Our model state without frozen foreign weights (model files and training checkpoints)


def frozen_prefixes(model: nn.Module) -> list[str]:
    """Names (with a trailing '.') of the outermost sub-modules whose parameters are all frozen.

    Such modules (DINOv2, the PointBERT teacher) are rebuilt from their own weight files, so model files and
    checkpoints skip them, buffers included. Modules with no parameters at all (the confounder queue) are
    *not* frozen: the queue is part of the trained state.
    """
    prefixes: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p) for p in prefixes):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            prefixes.append(name + ".")
    return prefixes


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` minus the entries under `frozen_prefixes(model)` (tensors detached, shared)."""
    skip = tuple(frozen_prefixes(model))
    return {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}


def load_trainable_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what `trainable_state_dict` saved: every non-frozen key must be present, none may be extra.

    Raises:
        WeightsError: listing the missing and unexpected keys or the shape mismatches (the caller adds which
            file they came from).
    """
    skip = tuple(frozen_prefixes(model))
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even with strict=False
        raise WeightsError(f"model weights do not match the model: {str(exc)[:600]}") from exc
    missing = [k for k in result.missing_keys if not (skip and k.startswith(skip))]
    if missing or result.unexpected_keys:
        raise WeightsError(
            "model weights do not match the model: "
            f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, "
            f"unexpected {result.unexpected_keys[:10]}{'...' if len(result.unexpected_keys) > 10 else ''}"
        )
