"""Transforms between frames at an image's stamp: tf2_ros's Buffer and TransformListener when installed, else
a small listener of /tf and /tf_static with the same answers for what the node asks.

Why a fallback: tf2_ros has no PyPI wheel, and the node must track objects in a fixed frame wherever it runs.
The fallback keeps a few seconds of every dynamic edge, interpolates between the two samples around the stamp
(linear translation, slerp rotation), allows a short extrapolation past the newest sample
(`max_extrapolation`), and chains edges through the tree's common ancestor. Answers are (4, 4) float64
matrices mapping points of `source` into `target`, or None when there is no transform (the caller decides what
that means).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from scipy.spatial.transform import Rotation, Slerp

from cleanpose_ros.tf_publisher import TF_QOS

TF_STATIC_QOS = QoSProfile(
    depth=100,
    history=QoSHistoryPolicy.KEEP_LAST,
    reliability=QoSReliabilityPolicy.RELIABLE,
    durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
)


def transform_to_matrix(transform) -> np.ndarray:
    """geometry_msgs/Transform -> (4, 4)."""
    q, t = transform.rotation, transform.translation
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    T[:3, 3] = (t.x, t.y, t.z)
    return T


class _Edge:
    """Time-stamped samples of one parent -> child transform."""

    def __init__(self, parent: str, static: bool, keep_ns: int):
        self.parent, self.static, self.keep_ns = parent, static, keep_ns
        self.stamps: deque[int] = deque()
        self.matrices: deque[np.ndarray] = deque()

    def add(self, stamp_ns: int, T: np.ndarray) -> None:
        if self.static:
            self.stamps, self.matrices = deque([stamp_ns]), deque([T])
            return
        if self.stamps and stamp_ns <= self.stamps[-1]:  # out of order or repeated: rebuild in order (rare)
            by_stamp = dict(zip(self.stamps, self.matrices))
            by_stamp[stamp_ns] = T
            pairs = sorted(by_stamp.items(), key=lambda kv: kv[0])
            self.stamps, self.matrices = deque(s for s, _ in pairs), deque(m for _, m in pairs)
        else:
            self.stamps.append(stamp_ns)
            self.matrices.append(T)
        while self.stamps and self.stamps[-1] - self.stamps[0] > self.keep_ns:
            self.stamps.popleft()
            self.matrices.popleft()

    def at(self, stamp_ns: int | None, max_extrapolation_ns: int) -> np.ndarray | None:
        if not self.stamps:
            return None
        if self.static or stamp_ns is None:
            return self.matrices[-1]
        i = bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return self.matrices[i]
        if i == 0 or i == len(self.stamps):  # before the first or after the last sample
            j = 0 if i == 0 else -1
            return self.matrices[j] if abs(self.stamps[j] - stamp_ns) <= max_extrapolation_ns else None
        s0, s1 = self.stamps[i - 1], self.stamps[i]
        a = (stamp_ns - s0) / (s1 - s0)
        T0, T1 = self.matrices[i - 1], self.matrices[i]
        T = np.eye(4)
        T[:3, 3] = (1 - a) * T0[:3, 3] + a * T1[:3, 3]
        T[:3, :3] = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]])))(a).as_matrix()
        return T


class TfCache:
    """The fallback listener: /tf and /tf_static into a tree of time-stamped edges."""

    def __init__(self, node: Node, keep_s: float = 10.0, max_extrapolation_s: float = 0.2):
        from tf2_msgs.msg import TFMessage

        self._node = node
        self._edges: dict[str, _Edge] = {}  # child -> edge from its parent
        self._lock = threading.Lock()
        self._keep_ns, self._extrapolation_ns = int(keep_s * 1e9), int(max_extrapolation_s * 1e9)
        self._subs = [
            node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), TF_QOS),
            node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True), TF_STATIC_QOS),
        ]

    def _on_tf(self, msg, static: bool) -> None:
        try:
            self._store(msg, static)
        except Exception as exc:  # a malformed transform must not stop the node
            self._node.get_logger().warning(f"/tf message ignored: {type(exc).__name__}: {exc}",
                                            throttle_duration_sec=10.0)

    def _store(self, msg, static: bool) -> None:
        with self._lock:
            for tf in msg.transforms:
                child = tf.child_frame_id.lstrip("/")
                edge = self._edges.get(child)
                if edge is None or edge.parent != tf.header.frame_id.lstrip("/") or edge.static != static:
                    edge = self._edges[child] = _Edge(tf.header.frame_id.lstrip("/"), static, self._keep_ns)
                edge.add(tf.header.stamp.sec * 1_000_000_000 + tf.header.stamp.nanosec,
                         transform_to_matrix(tf.transform))

    def _to_root(self, frame: str, stamp_ns: int | None) -> tuple[list[str], list[np.ndarray]] | None:
        """Frames from `frame` up to its root and T(parent <- frame) of each step; None if an edge has no
        sample."""
        chain, mats = [frame], []
        while chain[-1] in self._edges and len(chain) < 64:
            edge = self._edges[chain[-1]]
            T = edge.at(stamp_ns, self._extrapolation_ns)
            if T is None:
                return None
            mats.append(T)
            chain.append(edge.parent)
        return chain, mats

    def lookup(self, target: str, source: str, stamp_ns: int | None) -> np.ndarray | None:
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        with self._lock:
            up_s, up_t = self._to_root(source, stamp_ns), self._to_root(target, stamp_ns)
        if up_s is None or up_t is None:
            return None
        common = next((f for f in up_s[0] if f in up_t[0]), None)
        if common is None:
            return None
        T_common_source = _compose(up_s[1][: up_s[0].index(common)])
        T_common_target = _compose(up_t[1][: up_t[0].index(common)])
        return np.linalg.inv(T_common_target) @ T_common_source

    def close(self, node: Node) -> None:
        for sub in self._subs:
            node.destroy_subscription(sub)


def _compose(steps: list[np.ndarray]) -> np.ndarray:
    """T(ancestor <- frame) from the steps [T(p1 <- frame), T(p2 <- p1), ...]."""
    T = np.eye(4)
    for step in steps:
        T = step @ T
    return T


class TransformSource:
    """`lookup(target, source, stamp_ns, timeout_s)`: the transform at the stamp, waiting up to `timeout_s`
    for it, else the latest one; None when neither exists."""

    def __init__(self, node: Node):
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            Buffer = None
        if Buffer is not None:
            self._buffer = Buffer()
            self._listener = TransformListener(self._buffer, node)
            self._cache = None
            self.backend = "tf2_ros"
        else:
            self._buffer = None
            self._cache = TfCache(node)
            self.backend = "tf_cache"

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray | None:
        deadline = time.monotonic() + timeout_s
        while True:
            T = self._lookup(target, source, stamp_ns)
            if T is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        return T if T is not None else self._lookup(target, source, None)

    def _lookup(self, target: str, source: str, stamp_ns: int | None) -> np.ndarray | None:
        if self._cache is not None:
            return self._cache.lookup(target, source, stamp_ns)
        from rclpy.time import Time

        try:
            when = Time() if stamp_ns is None else Time(nanoseconds=stamp_ns)
            return transform_to_matrix(self._buffer.lookup_transform(target, source, when).transform)
        except Exception:  # tf2 LookupException, ExtrapolationException, ConnectivityException ...
            return None

    def close(self, node: Node) -> None:
        if self._cache is not None:
            self._cache.close(node)
        # tf2_ros's TransformListener unregisters itself when the node is destroyed
