"""RViz markers for detections: oriented box (lines), object axes, and a text label per object.

Markers are keyed by track id, so an object keeps its marker across frames; markers of objects that
disappeared are explicitly deleted (a lifetime alone leaves stale boxes when the node stops publishing).
"""

from __future__ import annotations

import colorsys
import zlib

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from cleanpose_core.geometry.boxes import BOX_EDGES, box_corners
from cleanpose_core.inference.types import Detection
from cleanpose_ros.conversions import pose_msg
LIFETIME = Duration(sec=2)  # safety net only; stale markers are deleted explicitly


def category_colour(category: str, alpha: float = 1.0) -> ColorRGBA:
    """A stable, distinct colour per category name."""
    hue = (zlib.crc32(category.encode()) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return ColorRGBA(r=r, g=g, b=b, a=alpha)


class MarkerBuilder:
    NAMESPACES = ("boxes", "axes", "labels")

    def __init__(self, axis_length: float = 0.05):
        self.axis_length = axis_length
        self._live: set[int] = set()

    def build(self, detections: list[Detection], header: Header) -> MarkerArray:
        array = MarkerArray()
        current = set()
        for det in detections:
            marker_id = self._marker_id(det)
            current.add(marker_id)
            array.markers += [self._box(det, header, marker_id), self._axes(det, header, marker_id),
                              self._label(det, header, marker_id)]
        for marker_id in sorted(self._live - current):
            for ns in self.NAMESPACES:
                array.markers.append(Marker(header=header, ns=ns, id=marker_id, action=Marker.DELETE))
        self._live = current
        return array

    @staticmethod
    def _marker_id(det: Detection) -> int:
        track = det.track_id or ""
        return int(track) if track.isdigit() else zlib.crc32(f"{det.category}:{track}".encode()) & 0x7FFFFFFF

    def _base(self, header: Header, ns: str, marker_id: int, kind: int) -> Marker:
        return Marker(header=header, ns=ns, id=marker_id, type=kind, action=Marker.ADD, lifetime=LIFETIME)

    def _box(self, det: Detection, header: Header, marker_id: int) -> Marker:
        marker = self._base(header, "boxes", marker_id, Marker.LINE_LIST)
        marker.pose = pose_msg(det.rotation, det.translation)
        marker.scale.x = 0.004  # line width (m)
        marker.color = category_colour(det.category)
        corners = box_corners(det.size)
        marker.points = [Point(x=float(corners[i][0]), y=float(corners[i][1]), z=float(corners[i][2]))
                         for edge in BOX_EDGES for i in edge]
        return marker

    def _axes(self, det: Detection, header: Header, marker_id: int) -> Marker:
        marker = self._base(header, "axes", marker_id, Marker.LINE_LIST)
        marker.pose = pose_msg(det.rotation, det.translation)
        marker.scale.x = 0.003
        length = self.axis_length
        # x red, y green, z blue
        for axis, colour in enumerate(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))):
            tip = [0.0, 0.0, 0.0]
            tip[axis] = length
            marker.points += [Point(), Point(x=tip[0], y=tip[1], z=tip[2])]
            marker.colors += [ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=1.0)] * 2
        return marker

    def _label(self, det: Detection, header: Header, marker_id: int) -> Marker:
        marker = self._base(header, "labels", marker_id, Marker.TEXT_VIEW_FACING)
        marker.pose = pose_msg(np.eye(3), det.translation - det.rotation[:, 1] * (det.size[1] / 2 + 0.03))
        marker.scale.z = 0.025  # text height (m)
        marker.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        marker.text = f"{det.category} {det.track_id or ''} {det.score:.2f}".strip()
        return marker
