"""Draw detections over an RGB image: projected oriented 3D box, object axes and a label (debug view)."""

from __future__ import annotations

import cv2
import numpy as np

from cleanpose_core.geometry.boxes import BOX_EDGES, box_corners
from cleanpose_core.geometry.camera import Intrinsics, project_points
from cleanpose_core.inference.types import Detection


def category_colour_bgr(category: str) -> tuple[int, int, int]:
    """Stable distinct colour per category (same hue rule as the RViz markers)."""
    import zlib

    hue = zlib.crc32(category.encode()) % 180
    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(r), int(g), int(b)  # drawn on an RGB image


def draw_detections(rgb: np.ndarray, detections: list[Detection], K: Intrinsics,
                    axis_length: float = 0.05) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> a copy with each detection's box (category colour), axes (x red, y green, z
    blue) and "category id score" label drawn on it. Objects behind the camera are skipped."""
    out = np.ascontiguousarray(rgb.copy())
    for det in detections:
        corners = box_corners(det.size) @ det.rotation.T + det.translation
        if (corners[:, 2] <= 0).any():
            continue
        uv = project_points(corners, K)
        colour = category_colour_bgr(det.category)
        for a, b in BOX_EDGES:
            cv2.line(out, _pt(uv[a]), _pt(uv[b]), colour, 2, cv2.LINE_AA)
        axes = np.vstack([np.zeros(3), np.eye(3) * axis_length]) @ det.rotation.T + det.translation
        axes_uv = project_points(axes, K)
        for i, axis_colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
            cv2.line(out, _pt(axes_uv[0]), _pt(axes_uv[i + 1]), axis_colour, 2, cv2.LINE_AA)
        label = f"{det.category} {det.track_id or ''} {det.score:.2f}".replace("  ", " ")
        top = uv[np.argmin(uv[:, 1])]
        cv2.putText(out, label, _pt(top + [-20, -8]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out


def _pt(uv: np.ndarray) -> tuple[int, int]:
    return int(round(float(uv[0]))), int(round(float(uv[1])))
