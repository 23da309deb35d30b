"""`teacher_precision`: the frozen KD teacher's forward in bf16 autocast where the CPU has native bf16."""

from pathlib import Path

import pytest
import torch

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.device import bf16_supported
from cleanpose_core.models.cleanpose import build_model
from cleanpose_core.train.components import load_model_config
from cleanpose_core.train.config import TrainConfig
from cleanpose_core.train.trainer import teacher_autocast
from tiny_cleanpose import TINY

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def test_precision_names_resolve_and_a_typo_is_refused():
    assert teacher_autocast("float32", CPU) is None
    assert teacher_autocast("bf16", CPU) is torch.bfloat16
    assert teacher_autocast("auto", CPU) is (torch.bfloat16 if bf16_supported() else None)
    assert teacher_autocast("auto", torch.device("cuda")) is None  # CUDA keeps the reference float32
    with pytest.raises(ConfigError, match=r"teacher_precision: 'half' is not one of \['auto', 'float32'"):
        from_dict(TrainConfig, {"teacher_precision": "half"})


def test_bf16_teacher_features_are_float32_and_close_to_the_float32_ones():
    torch.manual_seed(0)
    model = build_model(load_model_config(REPO / "config/model/cleanpose_lite.yaml", TINY)).eval()
    pts = torch.randn(4, 64, 3) * 0.05
    reference = model.teacher_features(pts)
    model.teacher_autocast = torch.bfloat16
    low = model.teacher_features(pts)
    assert low.dtype == torch.float32 and low.shape == reference.shape
    assert not torch.equal(low, reference)  # it did run in bf16 ...
    torch.testing.assert_close(low, reference, rtol=0.05, atol=0.05)  # ... and stays a usable target
