"""PointNet++ MSG backbone and the two ULIP-2 teacher encoders: parameter counts (architecture-facts §8),
shapes, gradients, equivalence of the optimised group encoder, and loading the ULIP-2 checkpoint layout."""

import argparse

import pytest
import torch
from torch import nn

from cleanpose_core.config import ConfigError, from_dict, to_dict
from cleanpose_core.models.pointnet2 import PointNet2MSG, PointNet2MSGConfig, PointwiseConv2d
from cleanpose_core.models.teachers.pointbert import (PointBERT, PointBERTConfig, load_teacher_weights,
                                                      load_ulip2_pointbert, ulip2_pointbert_state_dict)
from cleanpose_core.models.teachers.pointnet2_ssg import (PointNet2SSG, PointNet2SSGConfig,
                                                          load_ulip2_pointnet2_ssg)
from cleanpose_core.io import WeightsError, load_state_dict_file, select_prefix, strip_prefix
from cleanpose_core.ops import NEAR_ORIGIN_SQ

SMALL_BERT = PointBERTConfig(trans_dim=32, depth=2, num_heads=2, group_size=8, num_group=16, encoder_dims=24)


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def object_cloud(b=2, n=1024, seed=0):
    """Centred 10-20 cm objects in metres, like the network input, with some points near the origin."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, n, 3, generator=g) - 0.5) * torch.tensor([0.2, 0.15, 0.1])


def randomise_buffers(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-default BN statistics, so a loader that skips buffers is caught."""
    g = torch.Generator().manual_seed(seed)
    for name, buf in model.named_buffers():
        if buf.is_floating_point():
            buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
        else:
            buf.fill_(7)
    return model


def ulip_checkpoint(point_encoder: nn.Module, drop: str | None = None) -> dict:
    """A checkpoint in ULIP-2's layout: DDP `module.` prefix, the whole ULIP_WITH_IMAGE wrapper, training
    extras."""
    state = {f"module.point_encoder.{k}": v.clone() for k, v in point_encoder.state_dict().items()}
    state.update(
        {  # image/text towers and projections of the wrapper: must be ignored
            "module.visual.cls_token": torch.zeros(1, 1, 768),
            "module.visual.blocks.0.attn.qkv.weight": torch.zeros(6, 2),
            "module.transformer.resblocks.0.attn.in_proj_weight": torch.zeros(4, 2),
            "module.token_embedding.weight": torch.zeros(3, 2),
            "module.positional_embedding": torch.zeros(77, 2),
            "module.ln_final.weight": torch.ones(2),
            "module.image_projection": torch.zeros(768, 512),
            "module.text_projection": torch.zeros(512, 512),
            "module.pc_projection": torch.zeros(768, 512),
            "module.logit_scale": torch.ones([]),
        }
    )
    if drop is not None:
        del state[f"module.point_encoder.{drop}"]
    return {"epoch": 250, "state_dict": state, "best_acc1": 60.4,
            "args": argparse.Namespace(model="ULIP2_PointBERT", npoints=8192)}


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------------------- PointNet++ MSG
def test_pointnet2_msg_paper_parameter_counts_match_official():
    model = PointNet2MSG(PointNet2MSGConfig())
    assert trainable(model) == 1_307_808
    assert [trainable(m) for m in model.sa_modules] == [1_888, 10_944, 42_368, 166_656]
    assert [trainable(m) for m in model.fp_modules] == [49_664, 148_480, 230_400, 657_408]
    assert model.out_channels == 128
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.bias is None and c.kernel_size == (1, 1) for c in convs)


def test_pointnet2_msg_forward_shape_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = PointNet2MSG().train()
    out = model(object_cloud(2, 1024))
    assert out.shape == (2, 128, 1024) and torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_pointnet2_msg_eval_is_deterministic_and_batch_independent():
    model = PointNet2MSG().eval()
    xyz = object_cloud(3, 1024, seed=1)
    with torch.no_grad():
        batched = model(xyz)
        single = model(xyz[1:2])
    assert torch.allclose(batched[1:2], single, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_pointnet2_msg_projecting_before_grouping_equals_official_order(mode):
    torch.manual_seed(0)
    model = randomise_buffers(PointNet2MSG()).train(mode == "train")
    xyz = object_cloud(2, 1024, seed=2)
    fast = model(xyz)
    for sa in model.sa_modules:
        sa.project_first = False
    literal = model(xyz)
    assert torch.allclose(fast, literal, atol=1e-4, rtol=1e-4)


def test_pointnet2_msg_config_accepts_shared_or_per_scale_mlps():
    flat = PointNet2MSGConfig(sa_mlps=((8, 8, 16), (16, 16, 32)), npoints=(64, 16), radii=((0.02, 0.04),) * 2,
                              nsamples=((8, 16),) * 2, fp_mlps=((32,), (64,)))
    nested = from_dict(PointNet2MSGConfig, to_dict(flat))
    assert nested == flat and nested.sa_mlps[0] == ((8, 8, 16), (8, 8, 16))
    model = PointNet2MSG(nested)
    assert model(object_cloud(2, 128)).shape == (2, 32, 128)


@pytest.mark.parametrize("bad", [{"radii": [[0.01, 0.02]] * 3}, {"nsamples": [[16]] * 4},
                                 {"use_xyz": False}, {"fp_mlps": [[128], [], [256], [512]]}])
def test_pointnet2_msg_config_rejects_inconsistent_layouts(bad):
    with pytest.raises(ConfigError):
        from_dict(PointNet2MSGConfig, bad)


def test_pointwise_conv_equals_conv2d():
    conv = PointwiseConv2d(5, 7, bias=True)
    x = torch.randn(2, 5, 4, 3)
    assert torch.allclose(conv(x), nn.functional.conv2d(x, conv.weight, conv.bias), atol=1e-6)


# ------------------------------------------------------------------------------------------------ PointBERT
def test_pointbert_paper_parameter_count_and_output():
    model = PointBERT(PointBERTConfig())
    assert trainable(model) == 21_858_816
    assert trainable(model.encoder) == 428_800 and trainable(model.blocks) == 21_279_744
    model.eval()
    with torch.no_grad():
        out = model(object_cloud(2, 1024))
    assert out.shape == (2, 768) and torch.isfinite(out).all()


def ulip_group_encoder(enc, groups):
    """ULIP's `Encoder.forward`, written with its Conv1d Sequentials on (BG, C, n) maps."""
    b, g, n, _ = groups.shape
    f = enc.first_conv(groups.reshape(b * g, n, 3).transpose(2, 1))
    f = torch.cat([f.amax(dim=2, keepdim=True).expand(-1, -1, n), f], dim=1)
    return enc.second_conv(f).amax(dim=2).reshape(b, g, enc.encoder_channel)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_pointbert_group_encoder_equals_ulip_formulation(mode):
    torch.manual_seed(0)
    enc = randomise_buffers(PointBERT(SMALL_BERT).encoder)
    enc.train(mode == "train")
    groups = torch.randn(2, 16, 8, 3) * 0.02
    assert torch.allclose(enc(groups), ulip_group_encoder(enc, groups), atol=1e-5, rtol=1e-4)


def test_pointbert_groups_skip_near_origin_centres_and_are_relative():
    model = PointBERT(SMALL_BERT)
    xyz = object_cloud(2, 200, seed=3)
    xyz[:, 0] = 1.0  # index 0 is always the first centre; keep it away from the origin
    neighbourhoods, centres = model.group(xyz)
    assert neighbourhoods.shape == (2, 16, 8, 3) and centres.shape == (2, 16, 3)
    assert (centres.square().sum(-1) > NEAR_ORIGIN_SQ).all()
    assert (neighbourhoods[:, :, 0].abs() < 1e-7).all()  # the nearest neighbour of a centre is itself


def test_pointbert_every_parameter_trains_and_module_names_follow_ulip():
    model = PointBERT(SMALL_BERT).train()
    model(object_cloud(2, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    keys = set(model.state_dict())
    for key in ["cls_token", "cls_pos", "encoder.first_conv.1.running_mean", "encoder.second_conv.3.weight",
                "reduce_dim.weight", "pos_embed.2.bias", "blocks.blocks.1.attn.qkv.weight",
                "blocks.blocks.0.mlp.fc2.bias", "norm.weight"]:
        assert key in keys
    assert "blocks.blocks.0.attn.qkv.bias" not in keys
    assert torch.equal(model.cls_token, torch.zeros_like(model.cls_token))


def test_pointbert_rejects_too_few_points():
    with pytest.raises(ValueError, match="group_size"):
        PointBERT(SMALL_BERT)(torch.zeros(1, 4, 3))


def test_ulip2_pointbert_checkpoint_fills_every_parameter_and_buffer(tmp_path):
    source = randomise_buffers(PointBERT(SMALL_BERT), seed=1)
    path = tmp_path / "pointbert_ULIP-2.pt"
    torch.save(ulip_checkpoint(source), path)
    loaded = load_ulip2_pointbert(path, SMALL_BERT)
    assert_same_state(loaded, source)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    xyz = object_cloud(2, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(xyz), source.eval()(xyz))
    assert (
        ulip2_pointbert_state_dict(ulip_checkpoint(source)["state_dict"]).keys() == source.state_dict().keys()
    )


def test_ulip2_loader_rejects_file_missing_keys_with_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    torch.save(ulip_checkpoint(PointBERT(SMALL_BERT), drop="blocks.blocks.1.norm2.weight"), path)
    with pytest.raises(WeightsError, match=r"broken\.pt.*missing keys: blocks\.blocks\.1\.norm2\.weight"):
        load_ulip2_pointbert(path, SMALL_BERT)


def test_ulip2_loader_errors_for_absent_corrupt_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_ulip2_pointbert(tmp_path / "nowhere.pt", SMALL_BERT)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(WeightsError, match="corrupt.pt"):
        load_ulip2_pointbert(corrupt, SMALL_BERT)
    foreign = tmp_path / "image_only.pt"
    torch.save({"state_dict": {"module.visual.cls_token": torch.zeros(1)}}, foreign)
    with pytest.raises(WeightsError, match=r"image_only\.pt.*module\.point_encoder\.cls_token"):
        load_ulip2_pointbert(foreign, SMALL_BERT)
    wrong_size = tmp_path / "paper_size.pt"
    torch.save(ulip_checkpoint(PointBERT(PointBERTConfig(trans_dim=64, depth=2, num_heads=2, group_size=8,
                                                         num_group=16, encoder_dims=24))), wrong_size)
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_ulip2_pointbert(wrong_size, SMALL_BERT)


def test_teacher_weights_accept_our_own_layout_and_check_the_architecture(tmp_path):
    source = randomise_buffers(PointBERT(SMALL_BERT), seed=2)
    ours = tmp_path / "teacher.pt"
    torch.save({"format": "cleanpose-teacher-1", "arch": "pointbert", "config": to_dict(SMALL_BERT),
                "state_dict": source.state_dict()}, ours)
    assert_same_state(load_teacher_weights(PointBERT(SMALL_BERT), ours), source)
    other = tmp_path / "ssg_teacher.pt"
    torch.save({"arch": "pointnet2_ssg", "state_dict": source.state_dict()}, other)
    with pytest.raises(WeightsError, match="pointnet2_ssg"):
        load_teacher_weights(PointBERT(SMALL_BERT), other)


# ------------------------------------------------------------------------------------------- PointNet++ SSG
def test_pointnet2_ssg_parameter_count_and_ulip_names():
    model = PointNet2SSG(PointNet2SSGConfig())
    assert trainable(model) == 1_465_408
    keys = set(model.state_dict())
    assert {"sa1.mlp_convs.0.bias", "sa2.mlp_bns.2.running_var", "sa3.mlp_convs.2.weight", "fc1.weight",
            "bn2.num_batches_tracked"} <= keys
    assert model.sa3.mlp_convs[0].in_channels == 259 and model.out_dim == 256


def test_pointnet2_ssg_random_fps_start_is_seedable():
    model = PointNet2SSG().eval()
    xyz = object_cloud(2, 1024, seed=4)
    with torch.no_grad():
        a = model(xyz, generator=torch.Generator().manual_seed(5))
        b = model(xyz, generator=torch.Generator().manual_seed(5))
        c = model(xyz, generator=torch.Generator().manual_seed(6))
    assert a.shape == (2, 256) and (a >= 0).all()  # after ReLU
    assert torch.equal(a, b) and not torch.equal(a, c)
    fixed = PointNet2SSG(PointNet2SSGConfig(random_start=False)).eval()
    with torch.no_grad():
        assert torch.equal(fixed(xyz), fixed(xyz))


def test_pointnet2_ssg_trains_every_parameter():
    model = PointNet2SSG(PointNet2SSGConfig(dropout=0.0)).train()
    model(object_cloud(3, 256)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_ulip2_pointnet2_ssg_checkpoint_loads_and_missing_key_is_reported(tmp_path):
    source = randomise_buffers(PointNet2SSG(), seed=3)
    path = tmp_path / "checkpoint_pointnet2_ssg.pt"
    torch.save(ulip_checkpoint(source), path)
    loaded = load_ulip2_pointnet2_ssg(path)
    assert_same_state(loaded, source)
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.save(ulip_checkpoint(source, drop="sa2.mlp_bns.1.running_mean"), path)
    with pytest.raises(WeightsError, match=r"missing keys: sa2\.mlp_bns\.1\.running_mean"):
        load_ulip2_pointnet2_ssg(path)


# -------------------------------------------------------------------------------------------------- weights
def test_state_dict_helpers_unwrap_and_rename(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"model": {"module.a.w": torch.ones(1), "module.b": torch.zeros(1)}, "step": 3}, path)
    state = load_state_dict_file(path, "test weights")
    assert strip_prefix(state, "module.") == {"a.w": torch.ones(1), "b": torch.zeros(1)}
    assert select_prefix(strip_prefix(state, "module."), "a.") == {"w": torch.ones(1)}
    torch.save({"step": 3}, path)
    with pytest.raises(WeightsError, match="no state dict"):
        load_state_dict_file(path, "test weights")
