"""Image branch: gather-then-project equals the official upsample-project-gather; DINOv2 weight conversion."""

import pytest
import torch
from torch.nn import functional as F

from cleanpose_core.models.image_backbone import (DinoV2Backbone, ImageBackboneConfig, build_image_backbone,
                                                  dinov2_hub_to_timm, gather_pixel_features, resolve_weights)


@pytest.mark.parametrize("grid", [16, 14, 28])
def test_gather_then_project_equals_full_map_projection(grid):
    torch.manual_seed(0)
    fmap = torch.randn(2, 24, grid, grid, dtype=torch.float64)
    proj = torch.nn.Conv1d(24, 8, 1).double()
    choose = torch.randint(0, 224 * 224, (2, 300))
    choose[0, :4] = torch.tensor([0, 223, 224 * 223, 224 * 224 - 1])  # the four corners (border clamping)
    # Official: upsample the whole map, project every pixel, then gather.
    full = proj(F.interpolate(fmap, size=(224, 224), mode="bilinear", align_corners=False).flatten(2))
    ref = full.gather(2, choose.unsqueeze(1).expand(-1, 8, -1))
    ours = proj(gather_pixel_features(fmap, choose, 224))
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_gather_rejects_out_of_range_pixels():
    with pytest.raises(ValueError, match="choose"):
        gather_pixel_features(torch.randn(1, 3, 4, 4), torch.tensor([[224 * 224]]), 224)


def test_dinov2_backbone_gives_prenorm_patch_tokens_of_timm_vit():
    torch.manual_seed(0)
    bb = DinoV2Backbone(224).eval()
    rgb = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fmap = bb(rgb)
        tokens = bb.vit.forward_intermediates(rgb, indices=[11], norm=False, output_fmt="NLC",
                                              intermediates_only=True)[0]
    assert fmap.shape == (1, 384, 16, 16)
    torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), tokens)  # timm strips the CLS token here


def test_hub_state_dict_converts_with_hub_position_interpolation():
    bb = DinoV2Backbone(224)
    hub = {k: v.clone() for k, v in bb.vit.state_dict().items()}
    torch.manual_seed(0)
    hub["pos_embed"] = torch.randn(1, 1 + 37 * 37, 384)
    hub["mask_token"] = torch.zeros(1, 384)
    conv = dinov2_hub_to_timm(hub, grid=16)
    assert "mask_token" not in conv and conv["pos_embed"].shape == (1, 257, 384)
    bb.vit.load_state_dict(conv, strict=True)
    # The hub's interpolate_pos_encoding: bicubic with scale factor (16 + 0.1) / 37, no antialias.
    patch = hub["pos_embed"][:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    s = 16.1 / 37
    ref = F.interpolate(patch, scale_factor=(s, s), mode="bicubic", antialias=False)
    torch.testing.assert_close(conv["pos_embed"][:, 1:], ref.permute(0, 2, 3, 1).reshape(1, 256, 384))
    torch.testing.assert_close(conv["pos_embed"][:, :1], hub["pos_embed"][:, :1])


def test_missing_weights_raise_an_error_naming_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="huggingface-cli download timm/vit_small_patch14_dinov2"):
        resolve_weights("hf-hub:timm/vit_small_patch14_dinov2.lvd142m")
    with pytest.raises(FileNotFoundError, match="dinov2_vits14_pretrain.pth"):
        resolve_weights(str(tmp_path / "nope.pth"))


def test_frozen_backbone_has_no_trainable_parameters_and_cnn_backbone_trains():
    dino = build_image_backbone(ImageBackboneConfig(weights=None))
    assert not any(p.requires_grad for p in dino.parameters())
    cnn = build_image_backbone(ImageBackboneConfig(kind="timm", name="resnet18", weights=None, frozen=False,
                                                   input_size=112, out_index=2))
    fmap = cnn(torch.randn(2, 3, 224, 224))
    assert fmap.shape == (2, 128, 14, 14) and cnn.out_channels == 128
    assert all(p.requires_grad for p in cnn.parameters())
