"""Instance segmentation behind one interface: `Segmenter.segment(rgb, depth_m) -> InstanceMasks`.

Backends: `maskrcnn` (torchvision Mask R-CNN, trained here with `cleanpose train-seg`), `external` (masks from
the caller's own detector), `ground_truth` (NOCS-format masks, for evaluation), `depth_tabletop` (plane +
clusters, no training, no categories). Build one with `build_segmenter(kind, **options)`. Heavy modules
(torch, torchvision) are imported only by the backends that need them.
"""

from cleanpose_core.segmentation.base import (UNKNOWN_CLASS, InstanceMasks, SegmentationFilter, Segmenter,
                                              check_frame, masks_to_boxes)
from cleanpose_core.segmentation.factory import SEGMENTER_KINDS, build_segmenter

__all__ = ["UNKNOWN_CLASS", "InstanceMasks", "SegmentationFilter", "Segmenter", "check_frame", "masks_to_boxes",
           "SEGMENTER_KINDS", "build_segmenter"]
