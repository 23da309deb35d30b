"""Mask R-CNN backend: builds without downloads, runs on a 640x480 frame, weight files round-trip and fail
clearly."""

import numpy as np
import pytest
import torch

from cleanpose_core.config import ConfigError
from cleanpose_core.io import WeightsError
from cleanpose_core.segmentation import build_segmenter
from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.models.maskrcnn import MASKRCNN_PRESETS, MaskRCNNArch, MaskRCNNInference, build_maskrcnn
from cleanpose_core.segmentation.maskrcnn import (MaskRCNNSegmenter, MaskRCNNSegmenterConfig, load_maskrcnn,
                                                  save_maskrcnn_weights)
from cleanpose_core.segmentation.base import SegmentationFilter

SMALL = MaskRCNNInference(min_size=96, max_size=128)


def _frame(h=480, w=640, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    rgb[h // 4: h // 2, w // 4: w // 2] = (200, 30, 30)
    return rgb, np.full((h, w), 0.8, np.float32)


def test_every_preset_has_a_class_per_nocs_category_and_the_background():
    # models/ may not import the package root, so the network spells the count out; it must stay in step.
    assert all(arch.num_classes == len(NOCS_CATEGORIES) + 1 for arch in MASKRCNN_PRESETS.values())


def test_mobilenet_preset_parameter_count_stays_small():
    # 7.86M measured; the shipped file is budgeted at ~32 MB fp32 / 16 MB fp16.
    n = sum(p.numel() for p in build_maskrcnn(MASKRCNN_PRESETS["mobilenet_v3"]).parameters())
    assert 7.5e6 < n < 8.2e6


def test_random_weight_segmenter_returns_valid_masks_on_a_640x480_frame():
    torch.manual_seed(0)
    seg = build_segmenter("maskrcnn", random_weights=True, device="cpu", score_threshold=0.0, min_mask_area=0,
                          min_points=0, max_objects=50)
    rgb, depth = _frame()
    out = seg.segment(rgb, depth)
    assert out.reason is None, out.reason
    assert out.problem() is None
    # Score threshold 0 makes every detection reach the mask head; box_detections_per_img bounds them.
    assert 0 < len(out) <= MaskRCNNInference().box_detections_per_img
    assert out.masks.shape[1:] == (480, 640) and out.masks.dtype == bool
    assert np.all((out.class_ids >= 0) & (out.class_ids < 6)) and np.all(np.diff(out.scores) <= 0)


def test_segment_never_raises_on_bad_frames():
    seg = MaskRCNNSegmenter(MaskRCNNSegmenterConfig(random_weights=True, device="cpu", inference=SMALL))
    out = seg.segment(np.zeros((96, 128), np.float32), None)
    assert len(out) == 0 and "rgb" in out.reason


def test_weights_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_maskrcnn(MASKRCNN_PRESETS["mobilenet_v3"], SMALL, score_threshold=0.0).eval()
    path = save_maskrcnn_weights(
        tmp_path / "seg.pt", model, MASKRCNN_PRESETS["mobilenet_v3"], {"note": "test"}
    )
    loaded, arch, meta = load_maskrcnn(path, SMALL, score_threshold=0.0)
    assert arch == MASKRCNN_PRESETS["mobilenet_v3"] and meta == {"note": "test"}
    image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = model([image])[0], loaded([image])[0]
    assert a["boxes"].shape[0] > 0
    for key in ("boxes", "scores", "labels", "masks"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_half_precision_weights_load_back_as_float32(tmp_path):
    model = build_maskrcnn(MASKRCNN_PRESETS["mobilenet_v3"], SMALL)
    path = save_maskrcnn_weights(tmp_path / "seg16.pt", model, MASKRCNN_PRESETS["mobilenet_v3"], half=True)
    loaded, _, _ = load_maskrcnn(path, SMALL)
    p = next(loaded.parameters())
    assert p.dtype == torch.float32
    ref = dict(model.named_parameters())["backbone.fpn.layer_blocks.0.0.weight"]
    got = dict(loaded.named_parameters())["backbone.fpn.layer_blocks.0.0.weight"]
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-3)


def test_truncated_checkpoint_raises_a_clear_error(tmp_path):
    model = build_maskrcnn(MASKRCNN_PRESETS["mobilenet_v3"], SMALL)
    path = save_maskrcnn_weights(tmp_path / "seg.pt", model, MASKRCNN_PRESETS["mobilenet_v3"])
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="truncated.pt"):
        MaskRCNNSegmenter(MaskRCNNSegmenterConfig(weights=str(bad), device="cpu"))


def test_foreign_and_mismatched_files_raise_clear_errors(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(WeightsError, match="not a Mask R-CNN weights file \\(format 'cleanpose-maskrcnn-1'"):
        load_maskrcnn(foreign)
    # Weights of a different architecture: the error names the offending keys.
    narrow = MaskRCNNArch(fpn_channels=64)
    path = save_maskrcnn_weights(tmp_path / "narrow.pt", build_maskrcnn(narrow), narrow)
    obj = torch.load(path, weights_only=True)
    obj["arch"] = dict(obj["arch"], fpn_channels=128)
    torch.save(obj, path)
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_maskrcnn(path)


def test_missing_weights_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        build_segmenter("maskrcnn", weights=str(tmp_path / "nothere.pt"), device="cpu")


def test_factory_rejects_unknown_kinds_and_options():
    with pytest.raises(ConfigError, match="valid kinds: maskrcnn, external, ground_truth, depth_tabletop"):
        build_segmenter("yolo")
    with pytest.raises(ConfigError, match="min_szie"):
        build_segmenter("maskrcnn", random_weights=True, min_szie=480)
    with pytest.raises(ConfigError, match="score_threshold"):
        build_segmenter("external", score_treshold=0.3)


def test_factory_passes_flat_inference_settings_and_filter():
    seg = build_segmenter("maskrcnn", random_weights=True, device="cpu", min_size=240, max_size=320,
                          rpn_post_nms_top_n_test=40, score_threshold=0.7)
    assert seg.model.transform.min_size == (240,) and seg.model.rpn._post_nms_top_n["testing"] == 40
    assert seg.model.roi_heads.score_thresh == 0.7 and seg.filter == SegmentationFilter(score_threshold=0.7)


def test_batchnorm_folding_keeps_the_outputs():
    from cleanpose_core.models.maskrcnn import fuse_conv_bn_

    torch.manual_seed(0)
    model = build_maskrcnn(MASKRCNN_PRESETS["mobilenet_v3"], SMALL, score_threshold=0.0).eval()
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    image = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = model.backbone(image[None])
        assert fuse_conv_bn_(model) > 30
        got = model.backbone(image[None])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.body.modules())
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-4, rtol=1e-4)


def _fed_size(seg, rgb, K):
    """(height, width) of the image the network saw (after its resize, before padding)."""
    sizes = []
    hook = seg.model.transform.register_forward_hook(lambda m, i, out: sizes.append(out[0].image_sizes[0]))
    seg.set_intrinsics(K)
    seg.segment(rgb, None)
    hook.remove()
    return tuple(sizes[0])


def test_frames_reach_the_network_at_the_training_pixel_scale_whatever_their_size(tmp_path):
    from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics

    model = build_maskrcnn(MASKRCNN_PRESETS["mobilenet_v3"], MaskRCNNInference(min_size=160, max_size=214))
    # Trained at 160 x 214 on 640 x 480 frames of a 500-px focal length camera: input scale 1/3.
    path = save_maskrcnn_weights(tmp_path / "seg.pt", model, MASKRCNN_PRESETS["mobilenet_v3"],
                                 {"input_size": [160, 214], "train_camera": {"fx": 500.0, "width": 640,
                                                                             "height": 480}})
    seg = MaskRCNNSegmenter(MaskRCNNSegmenterConfig(weights=str(path), device="cpu"))
    assert _fed_size(seg, _frame()[0], Intrinsics(500.0, 500.0, 320, 240)) == (160, 213)
    # An HD frame of a camera with the same focal length: the same scale, objects keep their pixel size.
    assert _fed_size(seg, _frame(720, 1280)[0], Intrinsics(500.0, 500.0, 640, 360, 1280, 720)) == (240, 426)
    # A longer focal length makes objects larger: the frame is shrunk more.
    assert _fed_size(seg, _frame()[0], Intrinsics(1000.0, 1000.0, 320, 240)) == (80, 106)
    # A fixed input size in the config, or the switch off: torchvision's shorter side / longer-side cap.
    hd = Intrinsics(500.0, 500.0, 640, 360, 1280, 720)
    for inference in (MaskRCNNInference(min_size=160, max_size=214),
                      MaskRCNNInference(follow_camera_scale=False)):
        fixed = MaskRCNNSegmenter(MaskRCNNSegmenterConfig(weights=str(path), device="cpu",
                                                          inference=inference))
        assert _fed_size(fixed, _frame(720, 1280)[0], hd) == (120, 214)
    # Weights without a camera record were trained on REAL275 frames (the shipped segmenter: 320 x 426).
    no_camera = save_maskrcnn_weights(tmp_path / "old.pt", model, MASKRCNN_PRESETS["mobilenet_v3"],
                                       {"input_size": [320, 427]})
    old = MaskRCNNSegmenter(MaskRCNNSegmenterConfig(weights=str(no_camera), device="cpu"))
    assert _fed_size(old, _frame()[0], Intrinsics(*REAL275_INTRINSICS)) == (320, 426)


def test_cached_anchor_generator_gives_torchvisions_anchors_and_builds_each_size_once():
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    from cleanpose_core.models.maskrcnn import CachedAnchorGenerator

    sizes, ratios = ((32,), (64,)), ((0.5, 1.0, 2.0),) * 2
    cached, plain = CachedAnchorGenerator(sizes, ratios), AnchorGenerator(sizes, ratios)
    for h, w in ((320, 427), (240, 320), (320, 427)):
        images = ImageList(torch.zeros(1, 3, h, w), [(h, w)])
        features = [torch.zeros(1, 8, h // 8, w // 8), torch.zeros(1, 8, h // 16, w // 16)]
        assert all(torch.equal(a, b) for a, b in zip(cached(images, features), plain(images, features)))
    assert len(cached._grids) == 2  # the repeated size came from the cache
