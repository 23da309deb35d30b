"""The node's inputs: rgb and depth synchronised by stamp, camera_info as the newest message of the rgb frame.

- Every arriving message is checked first (encoding, sizes, step, buffer, camera matrix): a malformed one is
  counted under its topic and kind and dropped, so it never displaces a good one in the synchroniser.
- rgb + depth: message_filters.ApproximateTimeSynchronizer when installed (what ROS users expect), else our
  `ApproximateSync` (sync.py), within `sync_slop`.
- camera_info is not part of the match: many drivers stamp it differently or publish it at another rate. The
  newest valid camera_info of the rgb image's frame is used if its stamp lies within `camera_info_tolerance`
  of the image's (0 = any age). When it is older than that, the image's own camera_info may still be on its
  way (a low frame rate, or a driver that publishes it after the images): the frame waits for it up to
  INFO_WAIT_S, and goes on with the problem if none comes or a newer image pair takes its place.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from cleanpose_ros.image_conversion import COLOUR_ENCODINGS, DEPTH_ENCODINGS, image_problem
from cleanpose_ros.sync import ApproximateSync

try:
    import message_filters
except ImportError:  # PyPI ROS wheels: our own synchroniser
    message_filters = None

INFO_WAIT_S = 0.5  # drivers publish a frame's camera_info within milliseconds of its images
TOPICS = {"rgb": "rgb/image", "depth": "depth/image", "info": "rgb/camera_info"}
# (start of a problem from image_problem / camera_info_problem, the kind it is counted under)
REJECTION_KINDS = (("unsupported encoding", "unsupported encoding"), ("empty image", "empty image"),
                   ("step", "step too small"), ("buffer holds", "buffer too short"),
                   ("invalid camera matrix", "invalid camera matrix"),
                   ("non-finite distortion", "non-finite distortion coefficients"),
                   ("implausible size", "implausible size"))


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@dataclass
class Frame:
    rgb: Image
    depth: Image
    # the camera_info paired with the images when they matched; None: see info_problem
    info: CameraInfo | None
    received: float  # time.monotonic() when the set was complete
    info_problem: str | None = None


def camera_info_problem(info: CameraInfo) -> str | None:
    k = np.asarray(info.k, float)
    if k.size != 9 or not np.isfinite(k).all() or k[0] <= 0 or k[4] <= 0:
        return f"invalid camera matrix k={[round(float(v), 3) for v in k]}"  # no numpy repr, no overflow
    if not np.isfinite(np.asarray(info.d, float)).all():
        return "non-finite distortion coefficients"
    if info.width < 0 or info.height < 0 or info.width > 100_000 or info.height > 100_000:
        return f"implausible size {info.width}x{info.height}"
    return None


class FrameInputs:
    """Subscriptions and matching; `on_frame(Frame)` is called from the subscription callbacks (keep it
    cheap)."""

    def __init__(self, node: Node, on_frame: Callable[[Frame], None], slop_s: float, queue_size: int,
                 reliability: str, callback_group=None):
        self._node, self._on_frame = node, on_frame
        self.info_tolerance_s = 1.0
        self.received: Counter = Counter()
        self.rejected: Counter = Counter()  # "<topic>: <kind>" -> count
        self._warned: dict[str, float] = {}
        self.matched = 0
        self._infos: dict[str, CameraInfo] = {}  # frame_id -> newest valid camera_info
        self._newest_info: CameraInfo | None = None
        self._waiting: Frame | None = None  # a matched frame whose camera_info has not arrived yet
        self._lock = threading.Lock()
        self._wait_timer = node.create_timer(0.1, self._release_overdue, callback_group=callback_group)
        # A queue of sync_queue_size per topic: the callbacks are cheap, and a burst (or reliable QoS) must
        # not lose messages before they are matched; the worker still takes only the newest frame.
        qos = QoSProfile(depth=queue_size, history=QoSHistoryPolicy.KEEP_LAST,
                         reliability=QoSReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                         else QoSReliabilityPolicy.RELIABLE)
        self._subs = [node.create_subscription(CameraInfo, TOPICS["info"], self._on_info, qos,
                                               callback_group=callback_group)]
        if message_filters is not None:
            self.backend, self.sync = "message_filters", None
            gates = []
            for name, encodings in (("rgb", COLOUR_ENCODINGS), ("depth", DEPTH_ENCODINGS)):
                sub = message_filters.Subscriber(node, Image, TOPICS[name], qos_profile=qos,
                                                 callback_group=callback_group)
                self._subs.append(sub.sub)
                gates.append(_Gate(sub, lambda m, n=name, e=encodings: self._accept(n, m, e)))
            self._synchronizer = message_filters.ApproximateTimeSynchronizer(gates, queue_size, slop_s)
            self._synchronizer.registerCallback(self._on_images)
        else:
            self.backend = "cleanpose"
            self.sync = ApproximateSync(("rgb", "depth"), slop_s, queue_size)
            for name, encodings in (("rgb", COLOUR_ENCODINGS), ("depth", DEPTH_ENCODINGS)):
                self._subs.append(node.create_subscription(
                    Image, TOPICS[name], lambda m, n=name, e=encodings: self._on_image(n, m, e), qos,
                    callback_group=callback_group))

    def _accept(self, topic: str, msg: Image, encodings) -> bool:
        self.received[topic] += 1
        problem = image_problem(msg, encodings)
        if problem is not None:
            self.reject(topic, problem)
        return problem is None

    def reject(self, topic: str, problem: str) -> None:
        # Counted under a fixed kind: the details come from the message and would make the keys (and the log)
        # grow without bound under a broken publisher; they go to the log, once per kind every 5 s.
        kind = next((name for prefix, name in REJECTION_KINDS if problem.startswith(prefix)), "other")
        key = f"{topic}: {kind}"
        now = time.monotonic()
        with self._lock:
            self.rejected[key] += 1
            quiet = now - self._warned.get(key, -1e9) < 5.0  # each kind of problem at most every 5 s
            if not quiet:
                self._warned[key] = now
        if not quiet:
            self._node.get_logger().warning(f"{TOPICS.get(topic, topic)} rejected: {problem}")

    def _on_image(self, topic: str, msg: Image, encodings) -> None:
        if self._accept(topic, msg, encodings):
            match = self.sync.add(topic, stamp_ns(msg.header), msg)
            if match is not None:
                self._on_images(*match)

    def _on_info(self, msg: CameraInfo) -> None:
        self.received["info"] += 1
        problem = camera_info_problem(msg)
        if problem is not None:
            self.reject("info", problem)
            return
        with self._lock:
            self._infos[msg.header.frame_id] = msg
            self._newest_info = msg
            waiting = self._waiting
        if waiting is not None:
            info, problem = self.camera_info_for(waiting.rgb)
            if problem is None:
                with self._lock:
                    taken = self._waiting is waiting
                    if taken:
                        self._waiting = None
                if taken:
                    self._on_frame(dataclasses.replace(waiting, info=info, info_problem=None))

    def _on_images(self, rgb: Image, depth: Image) -> None:
        self.matched += 1
        info, problem = self.camera_info_for(rgb)
        frame = Frame(rgb, depth, info, time.monotonic(), problem)
        if info is None and self._info_may_follow(rgb):
            with self._lock:
                frame, self._waiting = self._waiting, frame  # the one it replaces goes on with its problem
            if frame is None:
                return
        self._on_frame(frame)

    def _release_overdue(self) -> None:
        with self._lock:
            frame = self._waiting
            if frame is None or time.monotonic() - frame.received < INFO_WAIT_S:
                return
            self._waiting = None
        self._on_frame(frame)

    def _info_may_follow(self, rgb: Image) -> bool:
        """Whether the newest camera_info of this image's frame is older than the image (beyond the
        tolerance)."""
        with self._lock:
            info = self._infos.get(rgb.header.frame_id, self._newest_info)
        return info is not None and stamp_ns(info.header) < stamp_ns(rgb.header)

    def camera_info_for(self, rgb: Image) -> tuple[CameraInfo | None, str | None]:
        """The camera_info to use with this rgb image, or None and why."""
        with self._lock:
            info = self._infos.get(rgb.header.frame_id, self._newest_info)
        if info is None:
            return (
                None,
                f"no valid camera_info received yet on {self._node.resolve_topic_name(TOPICS['info'])}",
            )
        age = abs(stamp_ns(info.header) - stamp_ns(rgb.header)) * 1e-9
        if self.info_tolerance_s > 0 and age > self.info_tolerance_s:
            return None, (f"newest camera_info is {age:.2f} s from the image (camera_info_tolerance "
                          f"{self.info_tolerance_s} s)")
        return info, None

    def stats(self) -> dict[str, object]:
        values: dict[str, object] = {"sync_backend": self.backend, "frames_matched": self.matched}
        values.update({f"received_{t}": n for t, n in self.received.items()})
        with self._lock:
            values["rejected_total"] = sum(self.rejected.values())
            values.update({f"rejected {k}": n for k, n in sorted(self.rejected.items())})
        if self.sync is not None:
            values.update({f"dropped_unmatched_{t}": n for t, n in self.sync.stats.dropped.items()})
            values.update({f"out_of_order_{t}": n for t, n in self.sync.stats.out_of_order.items()})
        return values

    def close(self) -> None:
        self._node.destroy_timer(self._wait_timer)
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []


if message_filters is not None:
    class _Gate(message_filters.SimpleFilter):
        """Passes on only the messages `accept` takes (between a message_filters Subscriber and the sync)."""

        def __init__(self, upstream, accept):
            super().__init__()
            self._accept = accept
            upstream.registerCallback(self._in)

        def _in(self, msg) -> None:
            if self._accept(msg):
                self.signalMessage(msg)
