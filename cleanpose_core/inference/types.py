"""What the Estimator returns: one `Detection` per object and a `FrameResult` per frame.

Conventions: R (3, 3) maps the object (NOCS) frame to the camera optical frame, t in metres, size = metric
extents of the tight box along the object's x, y, z axes; the object's y axis is the symmetry axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detection:
    """One object's category-level 9DoF estimate in the camera frame."""

    category: str                 # category name, e.g. "mug"
    category_id: int              # 0-based index into the model's category list
    score: float                  # segmentation confidence in [0, 1]
    rotation: np.ndarray          # (3, 3) float64, proper rotation, object -> camera
    translation: np.ndarray       # (3,) float64, metres
    size: np.ndarray              # (3,) float64, metric box extents (m)
    mask_bbox: tuple[int, int, int, int]  # x_min, y_min, x_max, y_max of the mask (pixels, inclusive)
    num_points: int               # valid depth pixels inside the mask
    symmetric: bool = False       # rotation about the object's y axis is unobservable
    # exp(-angle / 10°) between the pose head's rotation and the keypoint fit's (about the y axis ignored when
    # symmetric): 1 when the network's two pose estimates agree; 1 for the box-fit baseline, which has one.
    pose_confidence: float = 1.0
    keypoints: np.ndarray | None = None   # (K, 3) camera-frame keypoints (m)
    mask: np.ndarray | None = field(default=None, repr=False)  # (H, W) bool, when kept
    # (P, 3) the mask's measured points (m), when kept
    points: np.ndarray | None = field(default=None, repr=False)
    track_id: str | None = None   # assigned by a tracker across frames
    track_label: str | None = None  # `<category>_<id>` of a confirmed track: the object's TF frame name

    @property
    def confidence(self) -> float:
        """score x pose_confidence: how a result list ranks this detection (result pickles' pred_scores)."""
        return self.score * self.pose_confidence

    @property
    def pose(self) -> np.ndarray:
        """(4, 4) rigid transform object -> camera (no scale)."""
        T = np.eye(4)
        T[:3, :3] = self.rotation
        T[:3, 3] = self.translation
        return T


@dataclass
class FrameResult:
    """Everything estimated on one RGB-D frame. `reason` says why the list is empty (or partial) when it
    is."""

    detections: list[Detection]
    reason: str | None = None
    skipped: list[str] = field(default_factory=list)   # one line per object that was dropped, with why
    timings_ms: dict[str, float] = field(default_factory=dict)  # e.g. segmentation, preprocess, pose, total
    # Why the frame itself was unusable, as a fixed short kind for counting: rgb_invalid, depth_invalid,
    # size_mismatch, intrinsics_invalid or depth_empty; None when the frame was used.
    frame_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None
