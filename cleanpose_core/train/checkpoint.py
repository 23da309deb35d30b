"""Training checkpoints that continue a run bit for bit, written atomically.

A checkpoint is one `torch.save` file holding a plain dict (so it loads with ``weights_only=True``):

- ``model``: the model's state_dict *without* frozen sub-modules whose weights come from elsewhere
  (the DINOv2 image encoder, the PointBERT teacher): every sub-module whose parameters are all frozen is left
  out, with its buffers. Modules without parameters stay in, so the confounder-queue buffer is saved with
  every checkpoint. The official code pickles the queue only at the last epoch and pairs every earlier
  checkpoint with that final queue; saving it here is one of the fixes listed in DESIGN.md §3.
- ``optimizer``, ``scheduler``, ``scaler`` (AMP; None when off), ``step`` (iterations done),
- ``rng``: Python `random`, numpy's global generator, torch CPU, every CUDA device, plus any extra generators
  the caller names (the data streams and the queue sampler),
- ``data``: the data-order state (per source: epoch and batches consumed in it),
- ``config``: the resolved training config (STYLE.md §9).

Writes go to a temporary file in the same folder, are fsync'ed, then `os.replace`d over the target, so a crash
mid-write leaves the previous checkpoint intact (as timm's CheckpointSaver does).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "atomic_save",
    "capture_rng_state",
    "restore_rng_state",
    "frozen_prefixes",
    "trainable_state_dict",
    "load_trainable_state_dict",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_KEYS",
]

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "step", "rng", "data", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not match what is being restored."""


# ----------------------------------------------------------------------------------------------------------
# Atomic writing


def atomic_save(obj: Any, path: str | Path) -> Path:
    """`torch.save(obj)` to `path` through a temporary file and `os.replace`.

    Either the old file or the complete new one exists at `path` at any time; the temporary file is removed
    if writing fails. Returns the path written.
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


# ----------------------------------------------------------------------------------------------------------
# RNG states. Everything is converted to tensors / Python scalars so `weights_only=True` loading works.


def capture_rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every global RNG state (python, numpy, torch CPU, all CUDA devices) plus the named `generators`."""
    # {'bit_generator', 'state': {'key', 'pos'}, 'has_gauss', 'gauss'}
    np_state = np.random.get_state(legacy=False)
    if np_state["bit_generator"] != "MT19937":
        raise CheckpointError(f"numpy global generator {np_state['bit_generator']} is not MT19937")
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of `capture_rng_state`; named generators must match the saved ones exactly."""
    py = state["python"]
    # weights_only loading turns the inner tuple into a list; random.setstate needs tuples.
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": int(npst["pos"])},
            "has_gauss": int(npst["has_gauss"]),
            "gauss": float(npst["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        if not torch.cuda.is_available():
            # Resuming a GPU run on CPU is allowed but cannot be bit-exact; say so rather than fail.
            import warnings

            warnings.warn("checkpoint holds CUDA RNG states but CUDA is unavailable; resume is not bit-exact")
        elif len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            for i, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(s, i)
    saved = state.get("generators", {})
    wanted = generators or {}
    if set(saved) != set(wanted):
        raise CheckpointError(f"checkpoint has generators {sorted(saved)}, the run has {sorted(wanted)}")
    for name, g in wanted.items():
        g.set_state(saved[name])


# ----------------------------------------------------------------------------------------------------------
# Model state without frozen foreign weights


def frozen_prefixes(model: nn.Module) -> list[str]:
    """Names (with a trailing '.') of the outermost sub-modules whose parameters are all frozen.

    Such modules (DINOv2, the PointBERT teacher) are rebuilt from their own weight files, so checkpoints skip
    them, buffers included. Modules with no parameters at all (the confounder queue) are *not* frozen.
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
    """Load what `trainable_state_dict` saved: every non-frozen key must be present, none may be extra."""
    skip = tuple(frozen_prefixes(model))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not (skip and k.startswith(skip))]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            "model weights do not match the model: "
            f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, "
            f"unexpected {result.unexpected_keys[:10]}{'...' if len(result.unexpected_keys) > 10 else ''}"
        )


# ----------------------------------------------------------------------------------------------------------
# Whole training checkpoints


def save_checkpoint(path: str | Path, **contents: Any) -> Path:
    """Atomically write a training checkpoint; `contents` must hold exactly `CHECKPOINT_KEYS`."""
    missing = set(CHECKPOINT_KEYS) - set(contents)
    extra = set(contents) - set(CHECKPOINT_KEYS)
    if missing or extra:
        raise CheckpointError(f"checkpoint contents: missing {sorted(missing)}, unexpected {sorted(extra)}")
    return atomic_save({"format": "cleanpose-train-1", **contents}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or not a CleanPose training checkpoint;
            the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # RuntimeError / EOFError / UnpicklingError / zipfile errors for bad files
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupt?): {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != "cleanpose-train-1":
        raise CheckpointError(f"{path} is not a CleanPose training checkpoint (format != cleanpose-train-1)")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return ckpt
