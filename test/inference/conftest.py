"""Fixtures for the Estimator: a lite model file with random weights (the rendered frame is in
test/conftest.py)."""

import json

import pytest
import torch
import yaml

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import from_dict, to_dict


@pytest.fixture(scope="session")
def lite_model_file(tmp_path_factory):
    """A `cleanpose train`-format model file holding a randomly initialised lite network."""
    from cleanpose_core.models.cleanpose import CleanPoseConfig, build_model
    from cleanpose_core.io import trainable_state_dict

    data = yaml.safe_load(open("config/model/cleanpose_lite.yaml"))
    data["kd"]["teacher_weights"] = None
    cfg = from_dict(CleanPoseConfig, data)
    torch.manual_seed(0)
    model = build_model(cfg, teacher=False)
    path = tmp_path_factory.mktemp("model") / "lite_random.pt"
    torch.save({"format": "cleanpose-model-1", "model": trainable_state_dict(model),
                "model_config": to_dict(cfg), "n_points": 512, "step": 0, "seed": 0}, path)
    return path


@pytest.fixture(scope="session")
def mean_sizes_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sizes") / "mean_sizes.json"
    path.write_text(json.dumps({c: [0.1, 0.15, 0.1] for c in NOCS_CATEGORIES}))
    return path
