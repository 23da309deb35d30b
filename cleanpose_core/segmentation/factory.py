"""`build_segmenter(kind, **options)`: one constructor for every segmentation backend.

Options are checked, not passed through: the shared filter keys (`score_threshold`, `max_objects`,
`min_mask_area`, `min_points`) go to `SegmentationFilter`, the rest to the backend's own config dataclass,
and any other key is an error naming it and listing the valid ones (STYLE.md §8: a typo must not silently
become a default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.segmentation.base import SegmentationFilter, Segmenter

__all__ = ["SEGMENTER_KINDS", "build_segmenter"]

SEGMENTER_KINDS = ("maskrcnn", "external", "ground_truth", "depth_tabletop")
_FILTER_KEYS = tuple(f.name for f in dataclasses.fields(SegmentationFilter))


def _maskrcnn(filt: SegmentationFilter, options: dict[str, Any]) -> Segmenter:
    from cleanpose_core.segmentation.maskrcnn import MaskRCNNInference, MaskRCNNSegmenter, MaskRCNNSegmenterConfig

    # Inference settings may be given flat (min_size=..., rpn_post_nms_top_n_test=...) for convenience.
    inference_keys = {f.name for f in dataclasses.fields(MaskRCNNInference)}
    flat = {k: options.pop(k) for k in list(options) if k in inference_keys}
    if flat:
        options["inference"] = {**options.get("inference", {}), **flat}
    return MaskRCNNSegmenter(from_dict(MaskRCNNSegmenterConfig, options, "maskrcnn"), filt)


def _external(filt: SegmentationFilter, options: dict[str, Any]) -> Segmenter:
    from cleanpose_core.segmentation.external import ExternalSegmenter

    _no_options("external", options, ())
    return ExternalSegmenter(filt)


def _ground_truth(filt: SegmentationFilter | None, options: dict[str, Any]) -> Segmenter:
    from cleanpose_core.segmentation.ground_truth import GroundTruthSegmenter

    _no_options("ground_truth", options, ("data_root",))
    return GroundTruthSegmenter(options.get("data_root"), filt)


def _depth_tabletop(filt: SegmentationFilter, options: dict[str, Any]) -> Segmenter:
    from cleanpose_core.segmentation.depth_tabletop import DepthTabletopSegmenter, TabletopConfig

    classifier = options.pop("classifier", None)
    return DepthTabletopSegmenter(from_dict(TabletopConfig, options, "depth_tabletop"), filt, classifier)


def _no_options(kind: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for segmenter {kind!r}; valid: "
                          f"{sorted(allowed + _FILTER_KEYS)}")


_BUILDERS: dict[str, Callable[[Any, dict[str, Any]], Segmenter]] = {
    "maskrcnn": _maskrcnn, "external": _external, "ground_truth": _ground_truth, "depth_tabletop": _depth_tabletop,
}


def build_segmenter(kind: str, **options: Any) -> Segmenter:
    """A segmentation backend.

    Args:
        kind: one of `SEGMENTER_KINDS`: 'maskrcnn' (options: weights, device, random_weights, backbone and the
            `MaskRCNNInference` fields), 'external' (none), 'ground_truth' (data_root), 'depth_tabletop'
            (`TabletopConfig` fields, classifier).
        options: backend options plus the shared filter ones (score_threshold, max_objects, min_mask_area,
            min_points). The ground-truth backend keeps every instance unless filter options are given.
    Raises:
        ConfigError: unknown kind or option (the message lists the valid ones) or an invalid value.
        FileNotFoundError / WeightsError: Mask R-CNN weights missing or unreadable.
    """
    if kind not in _BUILDERS:
        raise ConfigError(f"unknown segmenter kind {kind!r}; valid kinds: {', '.join(SEGMENTER_KINDS)}")
    filter_options = {k: options.pop(k) for k in list(options) if k in _FILTER_KEYS}
    if kind == "ground_truth" and not filter_options:
        filt = None  # its own permissive default
    else:
        filt = from_dict(SegmentationFilter, filter_options, "filter")
    try:
        return _BUILDERS[kind](filt, dict(options))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (shared filter options: {', '.join(_FILTER_KEYS)})") from exc
