"""The node's parameter checks (plain dataclass; the DDS-level parameter tests are in test_pose_node.py)."""

import pytest

from cleanpose_ros.parameters import PoseNodeParams


@pytest.mark.parametrize("backend", ["maskrcnn", "depth_tabletop"])
def test_both_segmentation_backends_are_accepted(backend):
    PoseNodeParams(segmentation_backend=backend).validate()


def test_unknown_segmentation_backend_is_rejected_by_name():
    with pytest.raises(ValueError, match="segmentation_backend must be one of .*got 'yolo'"):
        PoseNodeParams(segmentation_backend="yolo").validate()


def test_shipped_params_file_names_every_parameter_with_its_default():
    from dataclasses import fields
    from pathlib import Path

    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "pose.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert set(values) == {f.name for f in fields(PoseNodeParams)}
    for f in fields(PoseNodeParams):
        assert values[f.name] == f.default, f.name


def test_integers_are_accepted_for_doubles_and_other_types_are_rejected_by_name():
    from cleanpose_ros.parameters import coerce

    assert coerce("score_threshold", 1) == 1.0 and isinstance(coerce("score_threshold", 1), float)
    with pytest.raises(ValueError, match="parameter score_threshold must be a double, got str"):
        coerce("score_threshold", "high")
    with pytest.raises(ValueError, match="parameter max_objects must be an integer, got float"):
        coerce("max_objects", 2.5)
    with pytest.raises(ValueError, match="parameter publish_tf must be a bool"):
        coerce("publish_tf", 1)


def test_range_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"parameter score_threshold must be in \[0.0, 1.0\], got 1.5"):
        PoseNodeParams(score_threshold=1.5).validate()
    with pytest.raises(ValueError, match="min_depth and max_depth"):
        PoseNodeParams(min_depth=2.0, max_depth=1.0).validate()
