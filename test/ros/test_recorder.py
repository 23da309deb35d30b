"""MCAP recording: what goes over DDS comes back out of the bag, deserialisable from its own definitions."""

import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from cleanpose_ros.msg import ObjectPose, ObjectPoseArray
from cleanpose_ros.recorder import BagRecorder, _typestore_with
from vision_msgs.msg import Detection3D, Detection3DArray

pytestmark = pytest.mark.ros


def test_recorded_bag_round_trips_custom_and_vision_msgs(ros_context, unique_topic, tmp_path):
    node = rclpy.create_node("recorder_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    bag = tmp_path / "bag"
    recorder = BagRecorder(node, bag, [(unique_topic + "/poses", ObjectPoseArray),
                                       (unique_topic + "/dets", Detection3DArray)])
    pub_poses = node.create_publisher(ObjectPoseArray, unique_topic + "/poses", 10)
    pub_dets = node.create_publisher(Detection3DArray, unique_topic + "/dets", 10)
    deadline = time.monotonic() + 20
    while min(recorder.counts.values()) < 3 and time.monotonic() < deadline:
        pub_poses.publish(ObjectPoseArray(objects=[ObjectPose(id="5", category="bowl")], device="cpu"))
        pub_dets.publish(Detection3DArray(detections=[Detection3D(id="5")]))
        executor.spin_once(timeout_sec=0.05)
    recorder.close()
    node.destroy_node()
    assert min(recorder.counts.values()) >= 3

    store = _typestore_with(["cleanpose_ros/msg/ObjectPoseArray", "vision_msgs/msg/Detection3DArray"])
    seen = {}
    with Reader(bag) as reader:
        assert any(p.suffix == ".mcap" for p in bag.iterdir())
        for connection, _, raw in reader.messages():
            msg = store.deserialize_cdr(raw, connection.msgtype)
            seen.setdefault(connection.msgtype, msg)
    assert seen["cleanpose_ros/msg/ObjectPoseArray"].objects[0].category == "bowl"
    assert seen["cleanpose_ros/msg/ObjectPoseArray"].device == "cpu"
    assert seen["vision_msgs/msg/Detection3DArray"].detections[0].id == "5"
    assert "sensor_msgs/msg/Image" in get_typestore(Stores.LATEST).types
