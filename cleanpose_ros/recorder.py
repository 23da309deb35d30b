"""Record ROS topics to an MCAP rosbag2 folder that `ros2 bag play` and Foxglove open.

Subscribes with `raw=True`, so the CDR bytes DDS delivered go into the bag untouched. The rosbags library
writes the rosbag2 folder (metadata.yaml + .mcap); message definitions it does not ship (vision_msgs, our own
msgs) are registered from the installed `.msg` files so the bag is self-describing.
"""

from __future__ import annotations

import re
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore


_BUILTIN_TYPES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
                  "uint32", "int64", "uint64", "string", "wstring"}


def _nested_types(msg_text: str, package: str) -> list[str]:
    """Message types a .msg definition refers to, as 'pkg/msg/Name'."""
    out = []
    for line in msg_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line.split()[-1] or len(line.split()) < 2:
            continue  # blank, comment, or constant
        base = re.split(r"[\[<]", line.split()[0], maxsplit=1)[0]
        if base in _BUILTIN_TYPES:
            continue
        pkg, _, name = base.rpartition("/")
        out.append(f"{pkg or package}/msg/{name}")
    return out


def _typestore_with(type_names: list[str]):
    """The rosbags type store for recent ROS 2, plus every listed type (and its dependencies) it lacks."""
    store = get_typestore(Stores.LATEST)
    pending = list(type_names)
    while pending:
        name = pending.pop()
        if name in store.types:
            continue
        package, _, msg_name = name.split("/")
        text = (Path(get_package_share_directory(package)) / "msg" / f"{msg_name}.msg").read_text()
        store.register(get_types_from_msg(text, name))
        pending += _nested_types(text, package)
    return store


class BagRecorder:
    """Subscribe to (topic, message class) pairs and write everything received to an MCAP bag."""

    def __init__(
        self, node: Node, path: str | Path, topics: list[tuple[str, type]], qos: QoSProfile | None = None
    ):
        self._path = Path(path)
        type_names = [cls.__module__.split(".")[0] + "/msg/" + cls.__name__ for _, cls in topics]
        self._store = _typestore_with(type_names)
        self._writer = Writer(self._path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections = {}
        self.counts: dict[str, int] = {}
        for (topic, cls), type_name in zip(topics, type_names):
            self._connections[topic] = self._writer.add_connection(topic, type_name, typestore=self._store)
            self.counts[topic] = 0
            node.create_subscription(
                cls, topic, self._callback(topic, node), qos or QoSProfile(depth=100), raw=True
            )

    def _callback(self, topic: str, node: Node):
        def on_message(data: bytes) -> None:
            self._writer.write(self._connections[topic], node.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1
        return on_message

    def close(self) -> None:
        self._writer.close()
