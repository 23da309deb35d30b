"""Instance segmentation behind one interface: `Segmenter.segment(rgb, depth_m) -> InstanceMasks`.

Segmenters and their factory only; the networks are `models/maskrcnn.py` and `models/point_classifier.py`,
their training `train/maskrcnn.py` and `train/point_classifier.py`.

Backends: `maskrcnn` (torchvision Mask R-CNN, trained here with `cleanpose train-seg`), `external` (masks from
the caller's own detector), `ground_truth` (NOCS-format masks, for evaluation), `depth_tabletop` (plane +
clusters, no training, no categories). `rescoring.RescoredSegmenter` wraps a backend whose candidates the
point classifier re-scores before the one filter runs. Build any of them with
`build_segmenter(SegmenterConfig(...))` or `build_segmenter(kind, **options)`. Heavy modules (torch,
torchvision) are imported only by the backends that need them.
"""

from cleanpose_core.segmentation.base import (UNKNOWN_CLASS, InstanceMasks, SegmentationFilter, Segmenter,
                                              check_frame, masks_to_boxes)
from cleanpose_core.segmentation.factory import (FRAME_SEGMENTERS, SEGMENTER_KINDS, SegmenterConfig,
                                                 build_segmenter)

# Listed here, not built from base.__all__: ruff checks re-exports against a literal list.
__all__ = ["UNKNOWN_CLASS", "InstanceMasks", "SegmentationFilter", "Segmenter", "check_frame",
           "masks_to_boxes", "FRAME_SEGMENTERS", "SEGMENTER_KINDS", "SegmenterConfig", "build_segmenter"]
