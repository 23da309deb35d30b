"""The Mask R-CNN segmentation backend and its weight files.

The network (architecture, presets, inference settings, BatchNorm folding) is `models/maskrcnn.py`; its
training is `train/maskrcnn.py` (`cleanpose train-seg`). This module reads and writes the deployable weights
files (they record the architecture, the categories and the training input size) and runs the network as a
`Segmenter`: the box head's score threshold follows the segmenter's filter, so the mask head runs only on
detections the filter would keep.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError, from_dict, to_dict
from cleanpose_core.device import resolve_device
from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics
from cleanpose_core.io import (CHECKPOINT_FORMAT, FORMATS, MASKRCNN_FORMAT, WeightsError, check_format,
                               load_strict, read_weights_file, save_artefact)
from cleanpose_core.models.maskrcnn import (DEFAULT_INPUT_SIZE, MASKRCNN_PRESETS, MaskRCNNArch,
                                            MaskRCNNInference, build_maskrcnn, fuse_conv_bn_)
from cleanpose_core.segmentation.base import InstanceMasks, SegmentationFilter, Segmenter
from cleanpose_core.shipped import shipped_file

__all__ = ["DEFAULT_WEIGHTS", "save_maskrcnn_weights", "load_maskrcnn", "MaskRCNNSegmenterConfig",
           "MaskRCNNSegmenter"]

# The shipped segmenter (trained on synthetic data with `cleanpose train-seg`, see its model card).
DEFAULT_WEIGHTS = shipped_file("segmenter_maskrcnn_mobilenet_v3.pt")


# ----------------------------------------------------------------------------------------------------------
# Weight files: {"format": MASKRCNN_FORMAT, "arch", "categories", "model", "meta"}, weights_only-loadable.


def save_maskrcnn_weights(
    path: str | Path,
    model: nn.Module,
    arch: MaskRCNNArch,
    meta: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
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


# ----------------------------------------------------------------------------------------------------------
# The segmentation backend


@dataclass
class MaskRCNNSegmenterConfig:
    """Options of `build_segmenter('maskrcnn', ...)` besides the shared filter ones."""

    weights: str = ""              # weights file; "" = the shipped DEFAULT_WEIGHTS
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    random_weights: bool = False   # build untrained (timing, tests); `weights` must then be ""
    # fold BatchNorm into the preceding convs (about 10% faster on CPU, same output)
    fuse_batchnorm: bool = True
    backbone: Literal["mobilenet_v3", "resnet50"] = "mobilenet_v3"  # preset used only with random_weights
    inference: MaskRCNNInference = dataclasses.field(default_factory=MaskRCNNInference)

    def validate(self) -> None:
        if self.random_weights and self.weights:
            raise ValueError("give either weights or random_weights, not both")


class MaskRCNNSegmenter(Segmenter):
    """Mask R-CNN backend. Construction raises on a missing/corrupt weights file; `segment()` never raises."""

    name = "maskrcnn"

    def __init__(
        self, config: MaskRCNNSegmenterConfig | None = None, post_filter: SegmentationFilter | None = None
    ):
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
        self._scale_per_focal = self._trained_scale_per_focal()
        self._focal: float | None = None

    def _trained_scale_per_focal(self) -> float | None:
        """Input scale x focal length (px) of the training frames, or None when the size is fixed by the
        config. Files without a `train_camera` record were trained on REAL275-intrinsics frames."""
        inference = self.config.inference
        if not inference.follow_camera_scale or inference.min_size or inference.max_size:
            return None
        size = self.meta.get("input_size")
        lo, hi = (int(size[0]), int(size[1])) if size and None not in size else DEFAULT_INPUT_SIZE
        camera = self.meta.get("train_camera") or {}
        fx = float(camera.get("fx", REAL275_INTRINSICS[0]))
        w, h = int(camera.get("width", 640)), int(camera.get("height", 480))
        return min(lo / min(h, w), hi / max(h, w)) * fx  # torchvision's resize factor of a training frame

    def set_intrinsics(self, K: Intrinsics) -> None:
        self._focal = float(K.fx) if K.fx > 0 else None

    def _fit_input_size(self, height: int, width: int) -> None:
        """Resize factor of this frame: the training frames' pixel scale at this camera's focal length."""
        if self._scale_per_focal is None or self._focal is None:
            return
        scale = self._scale_per_focal / self._focal
        lo = max(1, round(scale * min(height, width)))
        self.model.transform.min_size = (lo,)
        self.model.transform.max_size = max(lo, math.ceil(scale * max(height, width)))

    def set_filter(self, post_filter: SegmentationFilter) -> None:
        super().set_filter(post_filter)
        # The box head drops detections below its own threshold before the masks are made: keep it in step.
        self.model.roi_heads.score_thresh = float(post_filter.score_threshold)

    def retune(self, post_filter: SegmentationFilter, category_weight: float) -> None:
        if category_weight > 0:  # the scores are the network's own: re-scoring is `RescoredSegmenter`'s job
            raise ValueError("category_weight > 0 needs the point classifier, which is loaded only when the "
                             "segmenter is built with category_weight > 0; restart with it")
        super().retune(post_filter, category_weight)

    @torch.inference_mode()
    def _predict(self, rgb: np.ndarray, depth_m: np.ndarray | None) -> InstanceMasks:
        # np.require copies only a read-only view (torch warns on those); a writable array goes in as it is.
        image = (
            torch.from_numpy(np.require(rgb, requirements=["C", "W"]))
            .to(self.device)
            .permute(2, 0, 1)
            .float()
        )
        image = image.div_(255.0)
        self._fit_input_size(*rgb.shape[:2])
        out = self.model([image])[0]
        probs = out["masks"][:, 0]  # (M, H, W) probabilities, already pasted at the input resolution
        masks = (probs > self.config.inference.mask_threshold).cpu().numpy()
        return InstanceMasks(masks, (out["labels"] - 1).cpu().numpy().astype(np.int64),
                             out["scores"].float().cpu().numpy(), out["boxes"].float().cpu().numpy())
