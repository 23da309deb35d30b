"""bf16 autocast of chosen modules in training (`TrainConfig.bf16`, `bf16_modules`)."""

from pathlib import Path

import pytest
import torch

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.device import bf16_supported
from cleanpose_core.models.cleanpose import build_model
from cleanpose_core.train.components import load_model_config
from cleanpose_core.train.config import TrainConfig
from cleanpose_core.train.mixed_precision import bf16_autocast, use_bf16
from tiny_cleanpose import TINY

REPO = Path(__file__).resolve().parents[2]


def test_the_mode_resolves_per_device_and_a_typo_is_refused():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_bf16("on", cpu) and use_bf16("on", cuda) and not use_bf16("off", cpu)
    assert use_bf16("auto", cpu) == bf16_supported() and not use_bf16("auto", cuda)
    assert from_dict(TrainConfig, {}).bf16_modules == ["teacher", "rgb_extractor"]
    with pytest.raises(ConfigError, match=r"bf16: 'half' is not one of"):
        from_dict(TrainConfig, {"bf16": "half"})


def test_hooked_modules_compute_in_bf16_and_hand_float32_on():
    torch.manual_seed(0)
    model = build_model(load_model_config(REPO / "config/model/cleanpose_lite.yaml", TINY)).eval()
    pts, image = torch.randn(4, 64, 3) * 0.05, torch.randn(2, 3, 32, 32)
    inner = []
    first_conv = next(m for m in model.rgb_extractor.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda _m, _a, out: inner.append(out.dtype))
    reference_teacher, reference_image = model.teacher_features(pts), model.rgb_extractor(image)
    assert bf16_autocast(model, ["teacher", "rgb_extractor"]) == ["teacher", "rgb_extractor"]
    teacher, image_feat = model.teacher_features(pts), model.rgb_extractor(image)
    assert inner == [torch.float32, torch.bfloat16]  # before, after: the convolutions ran in bf16 ...
    for low, ref in ((teacher, reference_teacher), (image_feat, reference_image)):
        assert low.dtype == torch.float32 and low.shape == ref.shape and not torch.equal(low, ref)
        torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05)  # ... and stay close to float32
    assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and not torch.is_autocast_enabled("cpu")


def test_modules_the_model_lacks_are_skipped():
    model = build_model(load_model_config(REPO / "config/model/cleanpose_lite.yaml",
                                          {**TINY, "kd": {**TINY["kd"], "enabled": False},
                                           "loss": {"distillation": 0.0}}))
    assert model.teacher is None
    assert bf16_autocast(model, ["teacher", "backbone", "rgb_extractor"]) == ["rgb_extractor"]
