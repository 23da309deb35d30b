"""Fixtures for tests that talk through real rclpy and DDS (no mocks)."""

import os
import uuid

import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not available in this environment")


@pytest.fixture
def ros_context():
    """An initialised rclpy context, shut down after the test."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def unique_topic():
    """A topic name no other test (or concurrent run on this machine) uses."""
    return f"/cleanpose_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def segmenter_weights(tmp_path_factory):
    """A Mask R-CNN weights file with random weights: enough to test the plumbing, detects nothing."""
    from cleanpose_core.models.maskrcnn import MaskRCNNArch, build_maskrcnn
    from cleanpose_core.segmentation.maskrcnn import save_maskrcnn_weights

    path = tmp_path_factory.mktemp("seg") / "maskrcnn_random.pt"
    return save_maskrcnn_weights(path, build_maskrcnn(), MaskRCNNArch())
