"""Mask R-CNN for the six NOCS categories (torchvision), sized for CPU inference, trained from scratch here.

Reference: He et al., "Mask R-CNN", ICCV 2017; torchvision's `MaskRCNN` is the implementation. The NOCS
benchmarks' official segmentations come from a Matterport Mask R-CNN (ResNet-101) trained on COCO + CAMERA;
we ship our own, trained on synthetic NOCS-layout data, because no pretrained weights may be downloaded here.

What differs from torchvision's presets, and why:
- **No pretrained weights, ever** (`weights=None`, `weights_backbone=None`): the backbone uses ordinary
  `BatchNorm2d` (not the `FrozenBatchNorm2d` torchvision uses with ImageNet weights, which would freeze
  random statistics) and every backbone stage is trainable.
- **MobileNetV3-Large-FPN taps stride 8, 16 and 32** (feature blocks 6, 12, 16). torchvision's
  `fasterrcnn_mobilenet_v3_large_fpn` taps blocks 13 and 16, which are both stride 32; NOCS objects are often
  20-60 px tall at 640x480, too small for stride-32-only features.
- **Smaller heads** for the mobilenet preset (FPN 128 channels, box MLP 512, mask head 128 channels instead of
  256/1024/256): the box MLP alone is 12.8M parameters at torchvision's sizes, which would make the shipped
  file several times larger than the pose model; the ResNet50 preset keeps torchvision's sizes.
- **Anchors 16-256 px** instead of 32-512 px, for the same small-object reason.
- **CPU-friendly inference settings**: the input is fed at the size the weights were trained at (recorded in
  the weights file; else at its native 480x640, no upscaling to 800), 300/100 RPN proposals before/after NMS instead of 1000/1000, at most 20
  detections, and the box score threshold is the segmenter's own score threshold, so the mask head runs
  only on detections the post-filter would keep; BatchNorm is folded into the convolutions at load time.

Sections: configs and preset table, the network constructor, weight files, the `Segmenter` backend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
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

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError, from_dict, to_dict
from cleanpose_core.device import resolve_device
from cleanpose_core.io import (CHECKPOINT_FORMAT, FORMATS, MASKRCNN_FORMAT, WeightsError, check_format,
                               load_strict, read_weights_file, save_artefact)
from cleanpose_core.segmentation.base import InstanceMasks, SegmentationFilter, Segmenter
from cleanpose_core.shipped import shipped_file

__all__ = ["MaskRCNNArch", "MaskRCNNInference", "MASKRCNN_PRESETS", "DEFAULT_WEIGHTS",
           "build_maskrcnn", "apply_inference_settings", "fuse_conv_bn_", "save_maskrcnn_weights", "load_maskrcnn",
           "MaskRCNNSegmenter"]

# The shipped segmenter (trained on synthetic data with `cleanpose train-seg`, see its model card).
DEFAULT_WEIGHTS = shipped_file("segmenter_maskrcnn_mobilenet_v3.pt")


# ----------------------------------------------------------------------------------------------------------
# Configs


@dataclass
class MaskRCNNArch:
    """Architecture: everything a weights file must agree with. Stored in every weights file."""

    backbone: Literal["mobilenet_v3", "resnet50"] = "mobilenet_v3"
    num_classes: int = len(NOCS_CATEGORIES) + 1  # background + the six NOCS categories
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
            raise ValueError(f"backbone {self.backbone} has {levels} FPN levels, got {len(self.anchor_sizes)} "
                             f"anchor size tuples")
        if len({len(s) for s in self.anchor_sizes}) != 1:
            raise ValueError(f"every FPN level needs the same number of anchor sizes, got {self.anchor_sizes}")
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
    rpn_post_nms_top_n_test: int = 50   # proposals kept after NMS (torchvision: 1000). Seed-7 validation split,
    #                                     full pipeline IoU25: 84.2 with 50, 84.4 with 100, which costs 10 ms more
    box_nms_thresh: float = 0.5         # per-class NMS IoU between detections
    box_detections_per_img: int = 20    # at most this many detections get a mask
    mask_threshold: float = 0.5         # mask probability above which a pixel is inside

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
    fpn = BackboneWithFPN(body, return_layers, in_channels, arch.fpn_channels, extra_blocks=LastLevelMaxPool())
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
    anchors = AnchorGenerator(arch.anchor_sizes, (arch.aspect_ratios,) * len(arch.anchor_sizes))
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
# Weight files: {"format": MASKRCNN_FORMAT, "arch", "categories", "model", "meta"}, weights_only-loadable.


def save_maskrcnn_weights(path: str | Path, model: nn.Module, arch: MaskRCNNArch, meta: dict[str, Any] | None = None,
                          half: bool = False) -> Path:
    """Write a deployable weights file (no optimizer state).

    Args:
        half: store floating-point tensors as float16 (halves the file; loading converts back to float32).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    return save_artefact(path, MASKRCNN_FORMAT, arch=to_dict(arch), categories=list(NOCS_CATEGORIES),
                         model=state, meta=meta or {})


def load_maskrcnn(path: str | Path, inference: MaskRCNNInference | None = None, score_threshold: float = 0.5,
                  device: str | torch.device = "cpu") -> tuple[MaskRCNN, MaskRCNNArch, dict[str, Any]]:
    """Build the model a weights file describes and load it (eval mode, on `device`).

    Also accepts a `train-seg` training checkpoint (it carries the same `arch` under its config).
    Returns:
        (model, arch, meta).
    Raises:
        WeightsError: unreadable/corrupt file, not a Mask R-CNN weights file, wrong categories, or tensors
            that do not fit the architecture (names the keys); WeightsNotFoundError (also a
            FileNotFoundError): no such file.
    """
    what = FORMATS[MASKRCNN_FORMAT].what
    obj = read_weights_file(path, what)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT and "arch" in obj.get("config", {}):
        train_cfg = obj["config"].get("train", {})
        meta = {"step": obj.get("step"), "input_size": [train_cfg.get(k) for k in ("min_size", "max_size")]}
        obj = {"format": MASKRCNN_FORMAT, "arch": obj["config"]["arch"], "categories": list(NOCS_CATEGORIES),
               "model": obj["model"], "meta": meta}
    check_format(obj, MASKRCNN_FORMAT, path)
    if list(obj.get("categories", [])) != list(NOCS_CATEGORIES):
        raise WeightsError(f"{what}: {path} was trained for categories {obj.get('categories')}, expected "
                           f"{list(NOCS_CATEGORIES)}")
    try:
        arch = from_dict(MaskRCNNArch, obj["arch"], "arch")
    except ConfigError as exc:
        raise WeightsError(f"{what}: {path} has an invalid architecture record: {exc}") from exc
    meta = dict(obj.get("meta", {}))
    trained = meta.get("input_size")
    trained = (int(trained[0]), int(trained[1])) if trained and None not in trained else None
    model = build_maskrcnn(arch, (inference or MaskRCNNInference()).resolved(trained), score_threshold)
    state = {k: v.float() if v.is_floating_point() else v for k, v in obj["model"].items()}
    load_strict(model, state, what, path)
    return model.eval().to(device), arch, meta


def fuse_conv_bn_(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential into that conv (in place).

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


# ----------------------------------------------------------------------------------------------------------
# The segmentation backend


@dataclass
class MaskRCNNSegmenterConfig:
    """Options of `build_segmenter('maskrcnn', ...)` besides the shared filter ones."""

    weights: str = ""              # weights file; "" = the shipped DEFAULT_WEIGHTS
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    random_weights: bool = False   # build untrained (timing, tests); `weights` must then be ""
    fuse_batchnorm: bool = True    # fold BatchNorm into the preceding convs (about 10% faster on CPU, same output)
    backbone: Literal["mobilenet_v3", "resnet50"] = "mobilenet_v3"  # preset used only with random_weights
    inference: MaskRCNNInference = dataclasses.field(default_factory=MaskRCNNInference)

    def validate(self) -> None:
        if self.random_weights and self.weights:
            raise ValueError("give either weights or random_weights, not both")


class MaskRCNNSegmenter(Segmenter):
    """Mask R-CNN backend. Construction raises on a missing/corrupt weights file; `segment()` never raises."""

    name = "maskrcnn"

    def __init__(self, config: MaskRCNNSegmenterConfig | None = None, post_filter: SegmentationFilter | None = None):
        super().__init__(post_filter)
        self.config = config or MaskRCNNSegmenterConfig()
        self.config.validate()
        self.device = resolve_device(self.config.device, fallback_to_cpu=True)
        thr = self.filter.score_threshold
        if self.config.random_weights:
            self.arch = MASKRCNN_PRESETS[self.config.backbone]
            self.model = build_maskrcnn(self.arch, self.config.inference, thr).eval().to(self.device)
            self.meta: dict[str, Any] = {"random_weights": True}
        else:
            path = Path(self.config.weights) if self.config.weights else DEFAULT_WEIGHTS
            if not path.is_file():
                hint = ("the shipped segmenter is missing; train one with `cleanpose train-seg`" if not
                        self.config.weights else "check the path")
                raise FileNotFoundError(f"Mask R-CNN weights not found: {path} ({hint})")
            self.model, self.arch, self.meta = load_maskrcnn(path, self.config.inference, thr, self.device)
        if self.config.fuse_batchnorm:
            fuse_conv_bn_(self.model)
        # NHWC convolutions: the backbone ran 42 instead of 67 ms per 320-px frame on 2 CPU cores (oneDNN).
        self.model.to(memory_format=torch.channels_last)

    def set_filter(self, post_filter: SegmentationFilter) -> None:
        super().set_filter(post_filter)
        # The box head drops detections below its own threshold before the masks are made: keep it in step.
        self.model.roi_heads.score_thresh = float(post_filter.score_threshold)

    @torch.inference_mode()
    def _predict(self, rgb: np.ndarray, depth_m: np.ndarray | None) -> InstanceMasks:
        # np.require copies only a read-only view (torch warns on those); a writable array goes in as it is.
        image = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).to(self.device).permute(2, 0, 1).float()
        image = image.div_(255.0)
        out = self.model([image])[0]
        probs = out["masks"][:, 0]  # (M, H, W) probabilities, already pasted at the input resolution
        masks = (probs > self.config.inference.mask_threshold).cpu().numpy()
        return InstanceMasks(masks, (out["labels"] - 1).cpu().numpy().astype(np.int64),
                             out["scores"].float().cpu().numpy(), out["boxes"].float().cpu().numpy())
