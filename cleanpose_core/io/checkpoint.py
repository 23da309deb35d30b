"""Training checkpoints that continue a run bit for bit, written atomically.

A checkpoint is one `torch.save` file holding a plain dict tagged `CHECKPOINT_FORMAT` (so it loads with
``weights_only=True``):

- ``model``: the model's state_dict *without* frozen sub-modules whose weights come from elsewhere
  (the DINOv2 image encoder, the PointBERT teacher; `artefacts.trainable_state_dict`). Modules without
  parameters stay in, so the confounder-queue buffer is saved with every checkpoint. The official code pickles
  the queue only at the last epoch and pairs every earlier checkpoint with that final queue; saving it here is
  one of the fixes listed in DESIGN.md §3.
- ``optimizer``, ``scheduler``, ``scaler`` (AMP; None when off), ``step`` (iterations done),
- ``rng``: Python `random`, numpy's global generator, torch CPU, every CUDA device, plus any extra generators
  the caller names (the data streams and the queue sampler),
- ``data``: the data-order state (per source: epoch and batches consumed in it),
- ``config``: the resolved training config (STYLE.md §9).

Writes go through `artefacts.atomic_save` (temporary file, fsync, `os.replace`), so a crash mid-write leaves
the previous checkpoint intact (as timm's CheckpointSaver does). The format lives here, beside the other
artefacts, and not in `train`: `cleanpose train-seg` checkpoints its Mask R-CNN the same way, and the pose and
Mask R-CNN loaders accept a checkpoint to evaluate a run midway.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .artefacts import CHECKPOINT_FORMAT, WeightsError, read_artefact, save_artefact

__all__ = ["CheckpointError", "capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint",
           "CHECKPOINT_KEYS"]

CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "scaler", "step", "rng", "data", "config")


class CheckpointError(WeightsError, RuntimeError):
    """A checkpoint file is missing, unreadable, or does not match what is being restored.

    A WeightsError, so that one `except` catches every bad artefact; also still the RuntimeError it was.
    """


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
# Whole training checkpoints


def save_checkpoint(path: str | Path, **contents: Any) -> Path:
    """Atomically write a training checkpoint; `contents` must hold exactly `CHECKPOINT_KEYS`."""
    missing = set(CHECKPOINT_KEYS) - set(contents)
    extra = set(contents) - set(CHECKPOINT_KEYS)
    if missing or extra:
        raise CheckpointError(f"checkpoint contents: missing {sorted(missing)}, unexpected {sorted(extra)}")
    return save_artefact(path, CHECKPOINT_FORMAT, **contents)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, or not a CleanPose training checkpoint;
            the message names the file.
    """
    try:
        ckpt = read_artefact(path, CHECKPOINT_FORMAT, map_location)
    except WeightsError as exc:  # the resume error class, still naming the file
        raise CheckpointError(str(exc)) from exc
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return ckpt
