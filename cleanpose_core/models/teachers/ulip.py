"""The ULIP-2 checkpoint layout, shared by the PointBERT and PointNet++ SSG teacher loaders.

Official code: ULIP `main.py` saves `{"epoch", "state_dict", ...}` from a DistributedDataParallel model, so
every key starts with `module.`; the `ULIP_WITH_IMAGE` wrapper holds `point_encoder.*` (the 3D backbone),
`visual.*` (SLIP ViT-B/16), the CLIP text tower (`transformer.*`, `token_embedding.*`, `positional_embedding`,
`ln_final.*`), `image_projection`, `text_projection`, `pc_projection` and `logit_scale`. CleanPose loads the
whole wrapper and runs only `point_encoder` ([CP load_ulip_model.py], architecture-facts §6); we keep only the
`point_encoder.*` subset, whose names our teacher modules reproduce one to one.

Also accepted, so one loader serves every teacher file: a state dict already in our layout, bare or under
`state_dict` (as `cleanpose teacher` writes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ...io.artefacts import (WeightsError, load_strict, read_weights_file, select_prefix, strip_prefix,
                             unwrap_state_dict)

__all__ = ["ULIP_PREFIX", "ulip2_point_encoder_state_dict", "load_point_encoder_file"]

ULIP_PREFIX = "point_encoder."  # sub-module name of the 3D backbone in ULIP's wrapper


def ulip2_point_encoder_state_dict(ckpt_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The point-encoder subset of a ULIP-2 state dict, in our key layout.

    Strips DDP's `module.` prefix, keeps the `point_encoder.*` keys (dropping the image and text towers and
    the projections) and removes that prefix. The names below it are the same in our modules, so nothing is
    renamed.
    Returns an empty dict when the state dict has no point encoder.
    """
    return select_prefix(strip_prefix(ckpt_state_dict, "module."), ULIP_PREFIX)


def load_point_encoder_file(model: nn.Module, path: str | Path, what: str, arch: str) -> nn.Module:
    """Fill `model` from a ULIP-2 checkpoint or a file in our layout; strict, frozen afterwards.

    Args:
        model: the teacher encoder whose config matches the file.
        path: `.pt` file: an official ULIP-2 checkpoint, or a state dict of `model` (bare or under
        'state_dict').
        what: the name used in error messages, e.g. "ULIP-2 PointBERT teacher".
        arch: our architecture name; a `cleanpose teacher` file for another architecture is rejected.
    Raises:
        FileNotFoundError, WeightsError: missing or unreadable file, another architecture, missing or extra
            keys, or shape mismatches (the message names the file and the expected keys).
    """
    blob = read_weights_file(path, what)
    if isinstance(blob, Mapping) and isinstance(blob.get("arch"), str) and blob["arch"] != arch:
        raise WeightsError(f"{what}: {path} holds a {blob['arch']!r} encoder, expected {arch!r}")
    state = strip_prefix(unwrap_state_dict(blob, path, what), "module.")
    if any(k.startswith(ULIP_PREFIX) for k in state):
        state = ulip2_point_encoder_state_dict(state)
    elif not any(k in state for k in model.state_dict()):
        expected = ", ".join(ULIP_PREFIX + k for k in list(model.state_dict())[:4])
        raise WeightsError(f"{what}: {path} has neither ULIP-2 point-encoder keys (expected e.g. "
                           f"'module.{expected}', ...) nor keys of this encoder; found e.g. "
                           f"{', '.join(sorted(state)[:5])}")
    load_strict(model, state, what, path)
    return model.requires_grad_(False)
