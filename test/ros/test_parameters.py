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


def test_estimator_parameters_are_the_estimator_settings_with_one_set_of_defaults():
    from dataclasses import fields

    from cleanpose_core.inference.estimator import RETUNABLE, SETTINGS, EstimatorConfig
    from cleanpose_ros.parameters import FIELDS, RUNTIME, descriptor, estimator_config

    shared = {f.metadata["estimator"]: f for f in fields(PoseNodeParams) if "estimator" in f.metadata}
    assert {
        "score_threshold",
        "min_mask_area",
        "min_points",
        "max_objects",
        "category_weight",
        "segmenter",
    } <= set(shared)
    for name, f in shared.items():
        core = SETTINGS[name]
        assert f.default == ("" if core.default is None else core.default), name
        assert core.metadata["description"] in descriptor(f.name).description, name
        assert (
            f.metadata["bounds"] == core.metadata["bounds"]
            and f.metadata["runtime"] == core.metadata["runtime"]
        )
    assert set(RETUNABLE) <= set(RUNTIME) and all(FIELDS[n].metadata["estimator"] == n for n in RETUNABLE)
    # Built without copying field by field: the defaults give the default Estimator.
    assert estimator_config(PoseNodeParams()) == EstimatorConfig()
    config = estimator_config(
        PoseNodeParams(
            segmentation_backend="depth_tabletop",
            segmentation_weights="s.pt",
            min_mask_area=7,
            publish_object_points=True,
        )
    )
    assert (config.segmenter, config.segmenter_weights, config.min_mask_area, config.keep_masks) == (
        "depth_tabletop", "s.pt", 7, True)
    assert config.model_weights is None and config.category_classifier is None
