"""Frame-to-frame identity for detections: stable ids for TF frame names, and stable frames for symmetric objects.

A deliberately simple tracker (no motion model): per category, detections are matched to live tracks by the
Hungarian algorithm on centre distance (scipy), gated by `max_distance`; unmatched detections open new tracks;
tracks unseen for more than `max_missed` frames are dropped. Ids are never reused, so a TF child frame
`<prefix><category>_<id>` always names the same physical object.

Symmetric categories (rotation about the object's y axis unobservable): the network's rotation about y is
arbitrary and may spin from frame to frame. The tracker picks, among the equivalent rotations R·Ry(θ), the one
closest to the track's previous rotation (closed form), and for a new track the one whose object z axis faces
the camera, so a symmetric object's TF frame stays still when the object does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cleanpose_core.geometry.rotations import rotation_about_y
from cleanpose_core.inference.types import Detection


def align_symmetric_rotation(rotation: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Rotation R·Ry(θ) equivalent to `rotation` for a y-symmetric object, chosen deterministically.

    With a reference: θ maximises tr(Rref^T R Ry(θ)), i.e. the closest to `reference` (Frobenius).
    Without: θ makes the object's z axis point towards the camera (most negative camera-frame z component).
    """
    if reference is not None:
        M = reference.T @ rotation
        theta = np.arctan2(M[2, 0] - M[0, 2], M[0, 0] + M[2, 2])
    else:
        # z axis of R Ry(θ) = R[:, 0] sinθ + R[:, 2] cosθ; minimise its camera-z component.
        theta = np.arctan2(-rotation[2, 0], -rotation[2, 2])
    return rotation @ rotation_about_y(theta)


@dataclass
class _Track:
    track_id: str
    category: str
    translation: np.ndarray
    rotation: np.ndarray
    missed: int = 0


class PoseTracker:
    """Assigns `track_id` to detections across frames of one camera."""

    def __init__(self, max_distance: float = 0.10, max_missed: int = 5):
        if max_distance <= 0 or max_missed < 0:
            raise ValueError("max_distance must be > 0 m and max_missed >= 0")
        self.max_distance = max_distance  # metres between centres in consecutive frames
        self.max_missed = max_missed      # frames a track survives without a detection
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self._tracks.clear()

    def update(self, detections: list[Detection]) -> list[Detection]:
        """Set `track_id` (and, for symmetric objects, a stabilised rotation) on each detection, in place."""
        matched_tracks: set[int] = set()
        for category in sorted({d.category for d in detections}):
            det_idx = [i for i, d in enumerate(detections) if d.category == category]
            trk_idx = [j for j, t in enumerate(self._tracks) if t.category == category]
            pairs = []
            if trk_idx:
                cost = np.array([[np.linalg.norm(detections[i].translation - self._tracks[j].translation)
                                  for j in trk_idx] for i in det_idx])
                rows, cols = linear_sum_assignment(cost)
                pairs = [(det_idx[r], trk_idx[c]) for r, c in zip(rows, cols) if cost[r, c] <= self.max_distance]
            paired = {i for i, _ in pairs}
            for i, j in pairs:
                self._assign(detections[i], self._tracks[j])
                matched_tracks.add(j)
            for i in det_idx:
                if i not in paired:
                    det = detections[i]
                    if det.symmetric:
                        det.rotation = align_symmetric_rotation(det.rotation, None)
                    track = _Track(str(next(self._ids)), category, det.translation.copy(), det.rotation.copy())
                    self._tracks.append(track)
                    matched_tracks.add(len(self._tracks) - 1)
                    det.track_id = track.track_id
        for j, track in enumerate(self._tracks):
            if j not in matched_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return detections

    @staticmethod
    def _assign(det: Detection, track: _Track) -> None:
        if det.symmetric:
            det.rotation = align_symmetric_rotation(det.rotation, track.rotation)
        det.track_id = track.track_id
        track.translation = det.translation.copy()
        track.rotation = det.rotation.copy()
        track.missed = 0

    @property
    def live_ids(self) -> list[str]:
        return [t.track_id for t in self._tracks]
