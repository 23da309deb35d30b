"""Mask R-CNN for the six NOCS categories (torchvision), sized for CPU inference, trained from scratch here.

Reference: He et al., "Mask R-CNN", ICCV 2017; torchvision's `MaskRCNN` is the implementation. The NOCS
benchmarks' official segmentations come from a Matterport Mask R-CNN (ResNet-101) trained on COCO + CAMERA; we
ship our own, trained on synthetic NOCS-layout data, because no pretrained weights may be downloaded here.

What differs from torchvision's presets, and why:
- **No pretrained weights, ever** (`weights=None`, `weights_backbone=None`): the backbone uses ordinary
  `BatchNorm2d` (not the `FrozenBatchNorm2d` torchvision uses with ImageNet weights, which would freeze random
  statistics) and every backbone stage is trainable.
- **MobileNetV3-Large-FPN taps stride 8, 16 and 32** (feature blocks 6, 12, 16). torchvision's
  `fasterrcnn_mobilenet_v3_large_fpn` taps blocks 13 and 16, which are both stride 32; NOCS objects are often
  20-60 px tall at 640x480, too small for stride-32-only features.
- **Smaller heads** for the mobilenet preset (FPN 128 channels, box MLP 512, mask head 128 channels instead of
  256/1024/256): the box MLP alone is 12.8M parameters at torchvision's sizes, which would make the shipped
  file several times larger than the pose model; the ResNet50 preset keeps torchvision's sizes.
- **Anchors 16-256 px** instead of 32-512 px, for the same small-object reason.
- **CPU-friendly inference settings**: the input is fed at the size the weights were trained at (recorded in
  the weights file; else at its native 480x640, no upscaling to 800), 300/50 RPN proposals before/after NMS
  instead of 1000/1000, at most 20 detections, and the box score threshold is the segmenter's own score
  threshold, so the mask head runs only on detections the post-filter would keep; BatchNorm can be folded into
  the convolutions at load time (`fuse_conv_bn_`).

Sections: configs and preset table, the network constructor, BatchNorm folding. The weight files and the
`Segmenter` backend are `segmentation/maskrcnn.py`; training is `train/maskrcnn.py` (`cleanpose train-seg`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torchvision
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

__all__ = ["MaskRCNNArch", "MaskRCNNInference", "MASKRCNN_PRESETS", "DEFAULT_INPUT_SIZE", "build_maskrcnn",
           "apply_inference_settings", "fuse_conv_bn_"]


# ----------------------------------------------------------------------------------------------------------
# Configs


@dataclass
class MaskRCNNArch:
    """Architecture: everything a weights file must agree with. Stored in every weights file."""

    backbone: Literal["mobilenet_v3", "resnet50"] = "mobilenet_v3"
    num_classes: int = 7           # background + the six NOCS categories (cleanpose_core.NOCS_CATEGORIES)
    fpn_channels: int = 128        # FPN output width; torchvision uses 256
    box_head_dim: int = 512        # width of the two-layer box MLP; torchvision uses 1024
    mask_head_channels: int = 128  # width of the 4-conv mask head; torchvision uses 256
    # One tuple of anchor sizes (pixels, at the network's input scale) per FPN level, finest first;
    # every level must have the same number of sizes (the RPN head is shared across levels).
    anchor_sizes: tuple[tuple[int, ...], ...] = ((16, 24), (32, 48), (64, 96), (128, 256))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    # Training-time sampling: fewer than torchvision's 2000 proposals / 512 RoIs, since frames hold <= ~10
    # objects and CPU time is the budget.
    rpn_post_nms_top_n_train: int = 600
    box_batch_size_per_image: int = 128

    def validate(self) -> None:
        levels = {"mobilenet_v3": 4, "resnet50": 5}[self.backbone]  # tapped stages + the max-pool level
        if len(self.anchor_sizes) != levels:
            raise ValueError(
                f"backbone {self.backbone} has {levels} FPN levels, got {len(self.anchor_sizes)} "
                f"anchor size tuples"
            )
        if len({len(s) for s in self.anchor_sizes}) != 1:
            raise ValueError(
                f"every FPN level needs the same number of anchor sizes, got {self.anchor_sizes}"
            )
        if self.num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {self.num_classes}")
        for name in ("fpn_channels", "box_head_dim", "mask_head_channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class MaskRCNNInference:
    """Inference settings: free to change on a trained model (applied with `apply_inference_settings`)."""

    # Input size: None = the size the weights were trained at (recorded by `train-seg`), else 480 x 640
    # (native, no resize). A network trained from scratch at one scale detects poorly at another.
    min_size: int | None = None         # shorter image side fed to the network (px)
    max_size: int | None = None         # cap on the longer side (px)
    rpn_pre_nms_top_n_test: int = 300   # proposals per FPN level kept before NMS (torchvision: 1000)
    # proposals kept after NMS (torchvision: 1000). Seed-7 validation split,
    rpn_post_nms_top_n_test: int = 50
    # full pipeline IoU25: 84.2 with 50, 84.4 with 100, which costs 10 ms more
    box_nms_thresh: float = 0.5         # per-class NMS IoU between detections
    box_detections_per_img: int = 20    # at most this many detections get a mask
    mask_threshold: float = 0.5         # mask probability above which a pixel is inside
    # With min_size and max_size None and the camera known (`MaskRCNNSegmenter.set_intrinsics`): resize each
    # frame so that objects keep the pixel size they had in the training frames (training input scale x
    # training focal length / this camera's), whatever the frame size. A fixed shorter side fed 1280x720
    # Azure Kinect frames at half the trained pixel scale (cross-domain full pipeline IoU50 53.7 vs 76.8).
    follow_camera_scale: bool = True

    def resolved(self, trained_size: tuple[int, int] | None = None) -> "MaskRCNNInference":
        """A copy with the input size filled in: the explicit one, else `trained_size`, else 480 x 640."""
        lo, hi = trained_size or DEFAULT_INPUT_SIZE
        return dataclasses.replace(self, min_size=self.min_size or lo, max_size=self.max_size or max(hi, lo))

    def validate(self) -> None:
        size = self.resolved()
        lo, hi = size.min_size, size.max_size
        if lo <= 0 or hi < lo:
            raise ValueError(f"need 0 < min_size <= max_size, got {self.min_size}, {self.max_size}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        for name in ("rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test", "box_detections_per_img"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


DEFAULT_INPUT_SIZE = (480, 640)  # (min_size, max_size) when neither the caller nor the weights say

MASKRCNN_PRESETS: dict[str, MaskRCNNArch] = {
    "mobilenet_v3": MaskRCNNArch(),
    "resnet50": MaskRCNNArch(backbone="resnet50", fpn_channels=256, box_head_dim=1024, mask_head_channels=256,
                             anchor_sizes=((16,), (32,), (64,), (128,), (256,))),
}


# ----------------------------------------------------------------------------------------------------------
# The network


def _backbone_with_fpn(arch: MaskRCNNArch) -> tuple[BackboneWithFPN, list[str]]:
    """Randomly initialised backbone + FPN, and the names of the feature maps the RoI heads pool from."""
    if arch.backbone == "mobilenet_v3":
        body = torchvision.models.mobilenet_v3_large(weights=None, norm_layer=nn.BatchNorm2d).features
        # Last block of the stride-8, stride-16 and stride-32 stages (40, 112, 960 channels).
        return_layers, in_channels = {"6": "0", "12": "1", "16": "2"}, [40, 112, 960]
    else:
        body = torchvision.models.resnet50(weights=None)  # BatchNorm2d; fc/avgpool are dropped by the getter
        return_layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
        in_channels = [256, 512, 1024, 2048]
    fpn = BackboneWithFPN(
        body, return_layers, in_channels, arch.fpn_channels, extra_blocks=LastLevelMaxPool()
    )
    return fpn, list(return_layers.values())


def build_maskrcnn(arch: MaskRCNNArch | None = None, inference: MaskRCNNInference | None = None,
                   score_threshold: float = 0.5) -> MaskRCNN:
    """A randomly initialised Mask R-CNN (nothing is downloaded).

    Args:
        arch: architecture (default: the mobilenet_v3 preset).
        inference: inference settings (default: `MaskRCNNInference()`).
        score_threshold: detections scoring below this get no mask and are not returned.
    Returns:
        torchvision `MaskRCNN` taking a list of (3, H, W) float images in [0, 1] and, in training mode,
        targets with `boxes` (n, 4) xyxy, `labels` (n,) in 1..num_classes-1 and `masks` (n, H, W) uint8.
    """
    arch = arch or MaskRCNNArch()
    arch.validate()
    inference = (inference or MaskRCNNInference()).resolved()
    backbone, feature_names = _backbone_with_fpn(arch)
    anchors = CachedAnchorGenerator(arch.anchor_sizes, (arch.aspect_ratios,) * len(arch.anchor_sizes))
    c, res = arch.fpn_channels, 7
    model = MaskRCNN(
        backbone,
        num_classes=None,  # given by the predictors below
        min_size=inference.min_size,
        max_size=inference.max_size,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(c, anchors.num_anchors_per_location()[0]),
        rpn_post_nms_top_n_train=arch.rpn_post_nms_top_n_train,
        box_roi_pool=MultiScaleRoIAlign(feature_names, output_size=res, sampling_ratio=2),
        box_head=TwoMLPHead(c * res * res, arch.box_head_dim),
        box_predictor=FastRCNNPredictor(arch.box_head_dim, arch.num_classes),
        box_batch_size_per_image=arch.box_batch_size_per_image,
        mask_roi_pool=MultiScaleRoIAlign(feature_names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(c, (arch.mask_head_channels,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(arch.mask_head_channels, arch.mask_head_channels, arch.num_classes),
    )
    apply_inference_settings(model, inference, score_threshold)
    return model


class CachedAnchorGenerator(AnchorGenerator):
    """torchvision's anchor generator, keeping the anchor grids of the feature-map sizes it has seen: a
    camera's frames all have one size, and rebuilding some 35,000 anchors per frame cost 2.3 ms of a 90 ms
    frame. The grids are read-only downstream (the RPN concatenates and decodes them into new tensors)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._grids: dict = {}

    def grid_anchors(self, grid_sizes, strides):
        cell = self.cell_anchors[0]
        key = (tuple(tuple(int(v) for v in g) for g in grid_sizes),
               tuple(tuple(int(v) for v in s) for s in strides), cell.dtype, cell.device)
        if key not in self._grids:
            if len(self._grids) >= 8:  # a few sizes at most in practice; never grow without bound
                self._grids.clear()
            self._grids[key] = super().grid_anchors(grid_sizes, strides)
        return self._grids[key]


def apply_inference_settings(model: MaskRCNN, inference: MaskRCNNInference, score_threshold: float) -> None:
    """Set the test-time knobs of a built (possibly trained) model in place."""
    inference = inference.resolved((model.transform.min_size[0], model.transform.max_size))
    inference.validate()
    model.transform.min_size = (inference.min_size,)
    model.transform.max_size = inference.max_size
    model.rpn._pre_nms_top_n["testing"] = inference.rpn_pre_nms_top_n_test
    model.rpn._post_nms_top_n["testing"] = inference.rpn_post_nms_top_n_test
    model.roi_heads.score_thresh = float(score_threshold)
    model.roi_heads.nms_thresh = inference.box_nms_thresh
    model.roi_heads.detections_per_img = inference.box_detections_per_img


# ----------------------------------------------------------------------------------------------------------
# BatchNorm folding (inference)


def fuse_conv_bn_(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential into that conv (in
    place).

    Inference only (the model must be in eval mode: the folded BN uses its running statistics). This covers
    MobileNetV3's Conv2dNormActivation blocks and ResNet's downsample branches; ResNet's conv1/bn1 attribute
    pairs are left as they are. Returns the number of folded pairs.
    """
    if model.training:
        raise ValueError("fuse_conv_bn_ needs a model in eval mode")
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
                folded += 1
    return folded
