"""Dynamic TF for object frames: tf2_ros.TransformBroadcaster when installed, else the same wire protocol.

Where tf2_ros is missing (PyPI ROS wheels) we publish tf2_msgs/TFMessage on the absolute topic /tf with the
broadcaster's QoS (reliable, volatile, keep-last 100), which is what every TransformListener subscribes to.
All objects of a frame go out in one message (one sendTransform call).
"""

from __future__ import annotations

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

TF_QOS = QoSProfile(depth=100, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE,
                    durability=QoSDurabilityPolicy.VOLATILE)


class ObjectTfBroadcaster:
    def __init__(self, node: Node):
        try:
            from tf2_ros import TransformBroadcaster
        except ImportError:
            TransformBroadcaster = None
        if TransformBroadcaster is not None:
            self._broadcaster = TransformBroadcaster(node, qos=TF_QOS)
            self.backend = "tf2_ros"
        else:
            from tf2_msgs.msg import TFMessage

            self._tf_message = TFMessage
            self._publisher = node.create_publisher(TFMessage, "/tf", TF_QOS)
            self._broadcaster = None
            self.backend = "tf2_msgs"

    @property
    def publishers(self) -> list:
        """The publisher(s) this broadcaster made (for a lifecycle cleanup)."""
        return [self._publisher] if self._broadcaster is None else [self._broadcaster.pub_tf]

    def send(self, transforms: list[TransformStamped]) -> None:
        if not transforms:
            return
        if self._broadcaster is not None:
            self._broadcaster.sendTransform(transforms)
        else:
            self._publisher.publish(self._tf_message(transforms=transforms))
