"""The parts of the Estimator's networks that a runtime replaces (`runtime.py`): where each sits, the module
that is exported for it, its example inputs and dynamic axes, the weights file it comes from, and how it is
quantised under `int8`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cleanpose_core.shipped import shipped_file

SHIPPED_POSE_MODEL_NAME = "cleanpose_lite.pt"  # the Estimator's SHIPPED_POSE_MODEL (which imports runtime.py)


class Part:
    """One part of a network that a runtime replaces: where it sits (`owner.attr`), the module that is
    exported (`graph`, default the one sitting there), example inputs, their dynamic axes and the weights file
    it comes from.

    Every part runs in ONNX Runtime under `onnx` and `int8` (its `quantize` nodes int8 under `int8`); `bf16`
    parts run under bfloat16 autocast under `bf16`.
    """

    def __init__(
        self,
        name: str,
        owner: nn.Module,
        attr: str,
        example: tuple[torch.Tensor | None, ...] | torch.Tensor,
        dynamic: dict[int, str] | dict[str, dict[int, str]] | None,
        source: Path | None,
        dict_keys: list[str] | None = None,
        graph: nn.Module | None = None,
        input_names: tuple[str, ...] = ("x",),
        bf16: bool = True,
        call: type[nn.Module] | None = None,
        quantize: bool | tuple[str, ...] = False,
        int8_matmuls: bool = False,
    ):
        self.name, self.owner, self.attr, self.source = name, owner, attr, source
        self.dict_keys = dict_keys  # the names of a dict output (Mask R-CNN's FPN levels), else None
        self.example = (example,) if torch.is_tensor(example) else example
        # One input: its axes; several: {input name: axes}.
        self.dynamic = dynamic if len(input_names) > 1 or dynamic is None else {input_names[0]: dynamic}
        self.graph, self.input_names, self.bf16 = graph, input_names, bf16
        self.call = call  # wraps the ONNX Runtime module where the call site passes other than flat tensors
        # Under `int8` (quantize.py): static int8 of every node, or of those whose ONNX name contains one of
        # these (`quantize`, needs calibration frames); or dynamic int8 weight MatMuls (`int8_matmuls`).
        self.quantize, self.int8_matmuls = quantize, int8_matmuls

    @property
    def int8(self) -> bool:
        return bool(self.quantize) or self.int8_matmuls

    @property
    def module(self) -> nn.Module:
        return getattr(self.owner, self.attr)

    @property
    def reference(self) -> nn.Module:
        """The eager module this part computes (what is exported, and what the others are compared with)."""
        return self.graph if self.graph is not None else self.module


class _PointFeatures(nn.Module):
    """`PointNet2MSG.features` as a module (the `point_features` part's graph)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, xyz, *geometry):
        return self.network.features(xyz, *geometry)


class _EvalTrunk(nn.Module):
    """`CleanPose.keypoint_trunk` as a module with its five eval outputs (the `pose_trunk` part's graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pts, pts_local, rgb_local, samples, cls):
        return self.model.keypoint_trunk(pts, pts_local, rgb_local, samples, cls)[:5]


class _FlatRpnHead(nn.Module):
    """The RPN head with its feature maps as separate inputs and its two lists as one flat tuple (graph)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, *levels):
        logits, deltas = self.head(list(levels))
        return (*logits, *deltas)


class _ListRpnHead(nn.Module):
    """What sits in the RPN's `head` under `onnx`: the call site's list in, (logits list, deltas list) out."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, levels):
        out = self.inner(*levels)
        return list(out[: len(levels)]), list(out[len(levels):])


def estimator_parts(estimator) -> list[Part]:
    """The exportable parts of an Estimator's networks: point classifier, Mask R-CNN, pose network (each when
    the Estimator has it)."""
    from cleanpose_core.segmentation.maskrcnn import DEFAULT_WEIGHTS, MaskRCNNSegmenter
    from cleanpose_core.segmentation.rescoring import CategoryRescorer

    parts = []
    seg = estimator.segmenter
    rescorer = getattr(seg, "rescorer", None) or getattr(seg, "classifier", None)
    if isinstance(rescorer, CategoryRescorer):  # Mask R-CNN re-scored, or depth-tabletop regions named
        parts.append(Part("point_classifier", rescorer, "model", torch.zeros(2, rescorer.points, 3),
                          {0: "batch", 1: "points"}, rescorer.source, bf16=False))
    seg = getattr(seg, "inner", seg)  # the re-scored segmenter wraps Mask R-CNN
    if isinstance(seg, MaskRCNNSegmenter):
        source = None if seg.config.random_weights else Path(seg.config.weights or DEFAULT_WEIGHTS)
        frame = torch.zeros(1, 3, 320, 448)
        with torch.no_grad():  # the FPN maps of the example frame: level names, and the heads' input shapes
            levels = seg.model.backbone(frame)
        parts.append(
            Part(
                "maskrcnn_backbone",
                seg.model,
                "backbone",
                frame,
                {0: "batch", 2: "height", 3: "width"},
                source,
                dict_keys=list(levels),
                # The FPN and MobileNetV3's last stages; its early depthwise / hard-swish stages quantise
                # badly (output error 2.7% with these, 47% with all, on the calibration frames).
                quantize=("/fpn/", "/body.13/", "/body.14/", "/body.15/", "/body.16/"),
            )
        )
        parts += _maskrcnn_head_parts(seg.model, tuple(levels.values()), source)
    model = getattr(estimator, "model", None)
    if model is not None:
        parts += pose_model_parts(
            model, Path(estimator.config.model_weights or shipped_file(SHIPPED_POSE_MODEL_NAME)),
            estimator.n_points,
        )
    return parts


def _maskrcnn_head_parts(model: nn.Module, levels: tuple[torch.Tensor, ...],
                         source: Path | None) -> list[Part]:
    """RPN head (on every FPN level of `levels`), box head (fc6, fc7 on RoIAlign's 7x7 crops) and mask head
    (four 3x3 convs on the 14x14 crops); the predictors after them are one layer each and stay in PyTorch."""
    channels = levels[0].shape[1]
    names = tuple(f"level{i}" for i in range(len(levels)))
    rpn = Part("maskrcnn_rpn_head", model.rpn, "head", levels,
               {n: {0: "batch", 2: f"height{i}", 3: f"width{i}"} for i, n in enumerate(names)}, source,
               graph=_FlatRpnHead(model.rpn.head), input_names=names, call=_ListRpnHead, quantize=True)
    heads = model.roi_heads
    crops = [torch.zeros(2, channels, *_pair(pool.output_size)) for pool in (heads.box_roi_pool,
                                                                                   heads.mask_roi_pool)]
    return [
        rpn,
        Part("maskrcnn_box_head", heads, "box_head", crops[0], {0: "batch"}, source),
        Part("maskrcnn_mask_head", heads, "mask_head", crops[1], {0: "batch"}, source, quantize=True),
    ]


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def pose_model_parts(model: nn.Module, source: Path | None, n_points: int = 1024) -> list[Part]:
    """The parts of a CleanPose network a runtime replaces: its image backbone (ResNet-18 stem..layer2, or
    DINOv2), PointNet++'s feature computation (`PointNet2MSG.features`) and its keypoint trunk (everything
    after the two feature extractors, `CleanPose.keypoint_trunk`).

    PointNet++'s index computations (furthest-point sampling, ball queries, 3-NN: `PointNet2MSG.geometry`)
    stay in PyTorch and are inputs of its graph; so are the confounder queue's draws of the trunk's graph, so
    the sampler (and its seed) stays where it is.
    """
    size = model.rgb_extractor.input_size
    cnn = model.cfg.image.kind == "timm"  # a timm CNN: static int8; DINOv2: dynamic int8 MatMuls
    backbone = Part("image_backbone", model.rgb_extractor, "backbone", torch.zeros(2, 3, size, size),
                    {0: "batch"}, source, quantize=cnn, int8_matmuls=not cnn)
    b = 2
    generator = torch.Generator().manual_seed(0)
    cls = torch.arange(b) % model.cfg.cat_num
    samples = None if model.queue is None else model.queue.sample(cls, generator)
    example = (
        torch.randn(b, n_points, 3, generator=generator) * 0.05,
        torch.randn(b, model.pts_extractor.out_channels, n_points, generator=generator),
        torch.randn(b, model.cfg.image.out_dim, n_points, generator=generator),
        samples,
        cls,
    )
    names = ("pts", "pts_local", "rgb_local", "samples", "cls")
    batch, points = {0: "batch"}, {0: "batch", 1: "points"}
    dynamic = {"pts": points, "pts_local": {0: "batch", 2: "points"}, "rgb_local": {0: "batch", 2: "points"},
               "samples": batch, "cls": batch}
    # int8 MatMuls pay off at the paper's width (d_model 256), not at the lite's 128 (quantize.py)
    wide = model.cfg.iakd.attn.d_model >= 256
    trunk = Part("pose_trunk", model, "inference_trunk", example, dynamic, source, graph=_EvalTrunk(model),
                 input_names=names, bf16=False, int8_matmuls=wide)
    return [backbone, _point_features_part(model.pts_extractor, example[0], source), trunk]


def _point_features_part(network: nn.Module, xyz: torch.Tensor, source: Path | None) -> Part:
    with torch.no_grad():
        geometry = network.geometry(xyz)
    names = ("xyz", *(f"g{i}" for i in range(len(geometry))))
    # Batch is dynamic everywhere; the point count where it appears: xyz and the first FP module's 3-NN
    # indices and weights (its unknown points are the input points), after the centres and ball indices.
    first_fp = len(network.sa_modules) + sum(len(sa.radii) for sa in network.sa_modules)
    dynamic = {name: {0: "batch"} for name in names}
    for name in ("xyz", f"g{first_fp}", f"g{first_fp + 1}"):
        dynamic[name] = {0: "batch", 1: "points"}
    return Part("point_features", network, "inference_features", (xyz, *geometry), dynamic, source,
                graph=_PointFeatures(network), input_names=names, bf16=False)
