"""`build_segmenter`: one constructor for every segmentation backend, with the point classifier when asked.

Two ways to call it, one build path:
- `build_segmenter(SegmenterConfig(...))`: what the Estimator does, with its own settings (kind, the filter,
  device, Mask R-CNN weights, point classifier and its weight);
- `build_segmenter(kind, **options)`: the same settings flat, plus the backend's own options. The shared
  filter keys (`score_threshold`, `max_objects`, `min_mask_area`, `min_points`, `max_mask_overlap`) go to
  `SegmentationFilter`, `device`, `weights`, `category_classifier` and `category_weight` to the
  `SegmenterConfig`, the rest to the backend's own config dataclass; any other key is an error naming it and
  listing the valid ones (STYLE.md §8: a typo must not silently become a default).

With `category_weight` > 0 the point classifier is loaded (the given file, else the shipped one when present):
Mask R-CNN then becomes a `RescoredSegmenter` (candidates, re-scoring, the filter once), the depth-tabletop
backend gets it as the classifier that names its regions. The other kinds take their categories from the
caller or the ground truth and do not use it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.segmentation.base import SegmentationFilter, Segmenter

__all__ = ["SEGMENTER_KINDS", "FRAME_SEGMENTERS", "SegmenterConfig", "build_segmenter"]

log = logging.getLogger(__name__)

SEGMENTER_KINDS = ("maskrcnn", "external", "ground_truth", "depth_tabletop")
# they segment the frame itself and use the point classifier
FRAME_SEGMENTERS = ("maskrcnn", "depth_tabletop")
_FILTER_KEYS = tuple(f.name for f in dataclasses.fields(SegmentationFilter))


@dataclass
class SegmenterConfig:
    """What `build_segmenter` builds: the backend, the filter that runs once per frame, and the point
    classifier."""

    kind: str = "maskrcnn"                    # one of SEGMENTER_KINDS
    # the instances the segmenter returns; None = the backend's default
    filter: SegmentationFilter | None = None
    device: str = "auto"                      # Mask R-CNN and point classifier: auto | cpu | cuda | cuda:N
    weights: str | None = None                # maskrcnn only: weights file; None = the shipped one
    category_classifier: str | None = None    # point classifier file; None = the shipped one when present
    # w of the fused score s^(1-w) q^w (rescoring.py); 0 = no classifier
    category_weight: float = 0.0
    # the backend's own options: MaskRCNNSegmenterConfig
    backend: dict[str, Any] = field(default_factory=dict)
    # (and flat MaskRCNNInference) fields, TabletopConfig fields, data_root

    def validate(self) -> None:
        if self.kind not in SEGMENTER_KINDS:
            raise ConfigError(
                f"unknown segmenter kind {self.kind!r}; valid kinds: {', '.join(SEGMENTER_KINDS)}"
            )
        if not 0.0 <= self.category_weight < 1.0:
            raise ConfigError(f"category_weight must be in [0, 1), got {self.category_weight}")
        if self.weights is not None and self.kind != "maskrcnn":
            raise ConfigError(f"weights {self.weights!r}: only the maskrcnn segmenter takes a weights file, "
                              f"not {self.kind!r}")


def _config_from_options(kind: str, options: dict[str, Any]) -> SegmenterConfig:
    """The `SegmenterConfig` of a flat `build_segmenter(kind, **options)` call."""
    filter_options = {k: options.pop(k) for k in list(options) if k in _FILTER_KEYS}
    top = {
        k: options.pop(k)
        for k in ("device", "weights", "category_classifier", "category_weight")
        if k in options
    }
    if top.get("weights") == "":  # the backend's own spelling of "the shipped file"
        top["weights"] = None
    # The ground-truth backend keeps every instance unless filter options are given (its own default).
    filt = (
        from_dict(SegmentationFilter, filter_options, "filter")
        if filter_options or kind != "ground_truth"
        else None
    )
    return from_dict(SegmenterConfig, {"kind": kind, "filter": filt, **top, "backend": options})


def _point_classifier(config: SegmenterConfig):
    """The `CategoryRescorer` the config asks for, or None (weight 0, or no file and none shipped)."""
    from cleanpose_core.device import resolve_device
    from cleanpose_core.segmentation.rescoring import DEFAULT_CLASSIFIER, CategoryRescorer

    if config.kind not in FRAME_SEGMENTERS or config.category_weight == 0.0:
        return None
    if config.category_classifier is None and not DEFAULT_CLASSIFIER.is_file():
        log.info(
            "no shipped point classifier (%s): segmenter categories are used as they are", DEFAULT_CLASSIFIER
        )
        return None
    return CategoryRescorer.from_file(
        config.category_classifier or DEFAULT_CLASSIFIER,
        config.category_weight,
        resolve_device(config.device, fallback_to_cpu=True),
    )


def _maskrcnn(config: SegmenterConfig, filt: SegmentationFilter, rescorer) -> Segmenter:
    from cleanpose_core.models.maskrcnn import MaskRCNNInference
    from cleanpose_core.segmentation.maskrcnn import MaskRCNNSegmenter, MaskRCNNSegmenterConfig
    from cleanpose_core.segmentation.rescoring import RescoredSegmenter

    options = dict(config.backend)
    # Inference settings may be given flat (min_size=..., rpn_post_nms_top_n_test=...) for convenience.
    inference_keys = {f.name for f in dataclasses.fields(MaskRCNNInference)}
    flat = {k: options.pop(k) for k in list(options) if k in inference_keys}
    if flat:
        options["inference"] = {**options.get("inference", {}), **flat}
    for key in ("weights", "device"):
        if key in options:
            raise ConfigError(f"give {key} in the SegmenterConfig, not among the backend options")
    options.update(weights=config.weights or "", device=config.device)
    segmenter = MaskRCNNSegmenter(from_dict(MaskRCNNSegmenterConfig, options, "maskrcnn"), filt)
    # With the point classifier, Mask R-CNN only proposes candidates; the composite sets their filter.
    return segmenter if rescorer is None else RescoredSegmenter(segmenter, rescorer, filt)


def _external(config: SegmenterConfig, filt: SegmentationFilter, rescorer) -> Segmenter:
    from cleanpose_core.segmentation.external import ExternalSegmenter

    _no_options("external", config.backend, ())
    return ExternalSegmenter(filt)


def _ground_truth(config: SegmenterConfig, filt: SegmentationFilter | None, rescorer) -> Segmenter:
    from cleanpose_core.segmentation.ground_truth import GroundTruthSegmenter

    _no_options("ground_truth", config.backend, ("data_root",))
    return GroundTruthSegmenter(config.backend.get("data_root"), filt)


def _depth_tabletop(config: SegmenterConfig, filt: SegmentationFilter, rescorer) -> Segmenter:
    from cleanpose_core.segmentation.depth_tabletop import DepthTabletopSegmenter, TabletopConfig

    return DepthTabletopSegmenter(
        from_dict(TabletopConfig, dict(config.backend), "depth_tabletop"), filt, rescorer
    )


def _no_options(kind: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for segmenter {kind!r}; valid: "
                          f"{sorted(allowed + _FILTER_KEYS)}")


_BUILDERS: dict[str, Callable[[SegmenterConfig, Any, Any], Segmenter]] = {
    "maskrcnn": _maskrcnn,
    "external": _external,
    "ground_truth": _ground_truth,
    "depth_tabletop": _depth_tabletop,
}


def build_segmenter(config: SegmenterConfig | str, **options: Any) -> Segmenter:
    """A segmentation backend, re-scored by the point classifier when the config asks for it.

    Args:
        config: a `SegmenterConfig`, or a kind (one of `SEGMENTER_KINDS`) whose settings follow as `options`.
        options: with a kind only: backend options ('maskrcnn': random_weights, backbone, fuse_batchnorm and
        the
            `MaskRCNNInference` fields; 'ground_truth': data_root; 'depth_tabletop': the `TabletopConfig`
            fields), the shared filter options (score_threshold, max_objects, min_mask_area, min_points,
            max_mask_overlap) and the `SegmenterConfig` fields device, weights, category_classifier and
            category_weight. The ground-truth backend keeps every instance unless filter options are given.
    Raises:
        ConfigError: unknown kind or option (the message lists the valid ones) or an invalid value.
        FileNotFoundError / WeightsError: Mask R-CNN or point-classifier weights missing or unreadable.
    """
    if isinstance(config, str):
        if config not in _BUILDERS:
            raise ConfigError(f"unknown segmenter kind {config!r}; valid kinds: {', '.join(SEGMENTER_KINDS)}")
        config = _config_from_options(config, dict(options))
    elif options:
        raise ConfigError(f"options {sorted(options)} given with a SegmenterConfig: put them in it")
    config.validate()
    filt = config.filter
    if filt is None and config.kind != "ground_truth":
        filt = SegmentationFilter()
    try:
        return _BUILDERS[config.kind](config, filt, _point_classifier(config))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (shared options: {', '.join(_FILTER_KEYS)}, device, weights, "
                          f"category_classifier, category_weight)") from exc
