"""The node's parameter checks (plain dataclass; the DDS-level parameter tests are in test_pose_node.py)."""

import pytest

from cleanpose_ros.parameters import PoseNodeParams


@pytest.mark.parametrize("backend", ["maskrcnn", "depth_tabletop"])
def test_both_segmentation_backends_are_accepted(backend):
    PoseNodeParams(segmentation_backend=backend).validate()


def test_unknown_segmentation_backend_is_rejected_by_name():
    with pytest.raises(ValueError, match="segmentation_backend must be one of .*got 'yolo'"):
        PoseNodeParams(segmentation_backend="yolo").validate()
