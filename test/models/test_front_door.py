"""Attention blocks and the front-door module: parameter counts of the official layers, gate range,
switches."""

import torch

from cleanpose_core.models.attention import AttnConfig, AttnLayer, SelfAttnLayer
from cleanpose_core.models.front_door import FrontDoorConfig, FrontDoorEncoder


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_attention_layer_parameter_counts_match_official():
    assert n_params(AttnLayer(AttnConfig(block_num=4))) == 2_637_824
    assert n_params(SelfAttnLayer(AttnConfig(block_num=2))) == 791_552


def test_front_door_encoder_has_official_parameter_count():
    fd = FrontDoorEncoder(FrontDoorConfig())
    assert n_params(fd) == 3_561_986
    assert n_params(fd.gate_aug) == n_params(fd.gate_ori) == 257


def test_front_door_gate_lies_strictly_between_zero_and_one_and_mixes_inputs():
    torch.manual_seed(0)
    fd = FrontDoorEncoder(FrontDoorConfig(feat_dim=32, cross_attn=AttnConfig(1, 32, 4, 32),
                                          self_attn=AttnConfig(1, 32, 4, 32)))
    kpt, samples = torch.randn(3, 7, 32) * 5, torch.randn(3, 4, 32)
    s = fd.self_attn(fd.linear_local(kpt))
    c, _ = fd.cross_attn(fd.linear_global(kpt), samples)
    fused = fd.norm(s + c)
    w = fd.gate(fused, kpt)
    assert w.shape == (3, 7, 1)
    assert bool(((w > 0) & (w < 1)).all())
    torch.testing.assert_close(fd(kpt, samples), w * fused + (1 - w) * kpt)


def test_front_door_without_fusion_returns_layer_normed_features_and_has_no_gates():
    fd = FrontDoorEncoder(FrontDoorConfig(fusion=False))
    assert not hasattr(fd, "gate_aug")
    assert n_params(fd) == 3_561_986 - 2 * 257
    out = fd(torch.randn(2, 5, 256), torch.randn(2, 12, 256))
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_front_door_output_depends_on_the_confounder_samples():
    torch.manual_seed(1)
    fd = FrontDoorEncoder(FrontDoorConfig(feat_dim=32, cross_attn=AttnConfig(2, 32, 4, 32),
                                          self_attn=AttnConfig(1, 32, 4, 32)))
    kpt = torch.randn(1, 6, 32)
    assert not torch.allclose(fd(kpt, torch.randn(1, 4, 32)), fd(kpt, torch.randn(1, 4, 32)))
