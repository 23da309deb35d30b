"""Loading a trained CleanPose network from a `cleanpose train` model file or training checkpoint.

The one part of `io` that needs the network: building the model a file describes takes `models.cleanpose`.
So that `models` can read its own weight files through `io` without a cycle, this module is not imported by
`io/__init__.py`; import it by name (`from cleanpose_core.io.pose_model import load_pose_model`). The network
is imported inside the function: importing the Estimator (as the ROS parameter code does) stays light.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import ConfigError, from_dict
from .artefacts import (CHECKPOINT_FORMAT, FORMATS, MODEL_FORMAT, WeightsError, describe_contents,
                        load_trainable_state_dict, read_weights_file)

__all__ = ["load_pose_model", "DEFAULT_N_POINTS"]

DEFAULT_N_POINTS = 1024  # points per object of the official recipe, used when a file does not say


def _n_points_of_checkpoint(config: dict) -> int:
    """Points per object a training checkpoint's run sampled (the largest over its data sources)."""
    sources = config.get("train", {}).get("sources", [])
    points = [int(s.get("dataset", {}).get("sample_num", DEFAULT_N_POINTS)) for s in sources]
    return max(points or [DEFAULT_N_POINTS])


def load_pose_model(path: str | Path, device: torch.device):
    """A trained CleanPose network from a `cleanpose train` model file (`model_final.pt`) or training
    checkpoint (`checkpoint.pt`, to evaluate a run midway), in eval mode on `device`, and the number of points
    per object it was trained with.

    Raises:
        WeightsError naming the file when it is unreadable, not a CleanPose model file, or its weights do not
        fit its model config (WeightsNotFoundError, also a FileNotFoundError, when it is missing).
    """
    from ..models.cleanpose import CleanPoseConfig, build_model

    data = read_weights_file(path, FORMATS[MODEL_FORMAT].what)
    is_checkpoint = isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT
    if is_checkpoint and "model" in data.get("config", {}):
        data = {"model": data["model"], "model_config": data["config"]["model"],
                "n_points": _n_points_of_checkpoint(data["config"])}
    # Keys, not the tag, decide: model files are accepted as they were before the tag was checked anywhere.
    if not isinstance(data, dict) or "model" not in data or "model_config" not in data:
        raise WeightsError(f"{path} is not a CleanPose model file (expected keys 'model' and 'model_config', "
                           f"as `cleanpose train` writes to model_final.pt); found {describe_contents(data)}")
    try:
        cfg = from_dict(CleanPoseConfig, data["model_config"])
    except ConfigError as exc:
        raise WeightsError(f"{path}: invalid model_config: {exc}") from exc
    model = build_model(cfg, teacher=False)
    try:
        load_trainable_state_dict(model, data["model"])
    except Exception as exc:  # key or shape mismatch, or a 'model' that is no state dict: say which file
        raise WeightsError(f"{path}: weights do not fit the model config: {exc}") from exc
    n_points = int(data.get("n_points", DEFAULT_N_POINTS))
    return model.to(device).eval(), n_points
