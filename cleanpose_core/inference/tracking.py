"""Frame-to-frame identity for detections: stable ids for TF frame names, and stable frames for symmetric objects.

A deliberately simple tracker: per category, detections are matched to live tracks by the Hungarian algorithm
on centre distance (scipy), gated by `max_distance`; unmatched detections open new tracks; tracks unseen for more
than `max_missed` frames are dropped. Ids are never reused, so a TF child frame `<prefix><category>_<id>`
always names the same physical object.

Where it tracks: in a fixed frame when the caller gives the camera's pose in it (`camera_pose`, e.g. from TF
`odom` <- optical frame): objects standing still stay still there however the camera moves. Without a pose it
tracks in the camera frame and predicts each track with a constant-velocity model (when frames carry stamps), so
a smoothly moving camera does not push objects out of the gate.

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
    translation: np.ndarray  # in the tracking frame
    rotation: np.ndarray
    stamp: float | None = None
    velocity: np.ndarray | None = None  # m/s in the tracking frame, from the last two observations
    missed: int = 0

    def predicted(self, stamp: float | None) -> np.ndarray:
        if self.velocity is None or stamp is None or self.stamp is None:
            return self.translation
        return self.translation + self.velocity * float(np.clip(stamp - self.stamp, 0.0, 1.0))


class PoseTracker:
    """Assigns `track_id` to detections across frames of one camera."""

    def __init__(self, max_distance: float = 0.10, max_missed: int = 5):
        self.configure(max_distance, max_missed)
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)

    def configure(self, max_distance: float, max_missed: int) -> None:
        """Change the gates (a node's run-time parameters); live tracks are kept."""
        if max_distance <= 0 or max_missed < 0:
            raise ValueError("max_distance must be > 0 m and max_missed >= 0")
        self.max_distance = max_distance  # metres between a track's (predicted) centre and a detection
        self.max_missed = max_missed      # frames a track survives without a detection

    def reset(self) -> None:
        self._tracks.clear()

    def rebase(self, transform: np.ndarray) -> None:
        """Move every track into another frame: `transform` (4, 4) maps points of the current tracking frame
        into the new one. Lets a caller switch between the fixed and the camera frame (a transform that comes
        and goes) without losing ids."""
        R, t = transform[:3, :3], transform[:3, 3]
        for track in self._tracks:
            track.translation = R @ track.translation + t
            track.rotation = R @ track.rotation
            track.velocity = None if track.velocity is None else R @ track.velocity

    def update(self, detections: list[Detection], camera_pose: np.ndarray | None = None,
               stamp: float | None = None) -> list[Detection]:
        """Set `track_id` (and, for symmetric objects, a stabilised rotation) on each detection, in place.

        Args:
            detections: this frame's detections, poses in the camera frame.
            camera_pose: (4, 4) pose of the camera in the tracking frame, or None to track in the camera frame.
                Keep it None or not-None for the whole life of the tracker (the frames must not mix).
            stamp: the frame's time in seconds (the motion model's clock), or None.
        """
        R_tc, t_tc = (np.eye(3), np.zeros(3)) if camera_pose is None else (camera_pose[:3, :3], camera_pose[:3, 3])
        moving_frame = camera_pose is None
        matched_tracks: set[int] = set()
        for category in sorted({d.category for d in detections}):
            det_idx = [i for i, d in enumerate(detections) if d.category == category]
            trk_idx = [j for j, t in enumerate(self._tracks) if t.category == category]
            centres = {i: R_tc @ detections[i].translation + t_tc for i in det_idx}
            pairs = []
            if trk_idx:
                predicted = [self._tracks[j].predicted(stamp if moving_frame else None) for j in trk_idx]
                cost = np.array([[np.linalg.norm(centres[i] - p) for p in predicted] for i in det_idx])
                rows, cols = linear_sum_assignment(cost)
                pairs = [(det_idx[r], trk_idx[c]) for r, c in zip(rows, cols) if cost[r, c] <= self.max_distance]
            paired = {i for i, _ in pairs}
            for i, j in pairs:
                self._assign(detections[i], self._tracks[j], R_tc, centres[i], stamp)
                matched_tracks.add(j)
            for i in det_idx:
                if i not in paired:
                    det = detections[i]
                    if det.symmetric:
                        det.rotation = align_symmetric_rotation(det.rotation, None)
                    track = _Track(str(next(self._ids)), category, centres[i], R_tc @ det.rotation, stamp)
                    self._tracks.append(track)
                    matched_tracks.add(len(self._tracks) - 1)
                    det.track_id = track.track_id
        for j, track in enumerate(self._tracks):
            if j not in matched_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return detections

    @staticmethod
    def _assign(det: Detection, track: _Track, R_tc: np.ndarray, centre: np.ndarray, stamp: float | None) -> None:
        rotation = R_tc @ det.rotation  # in the tracking frame
        if det.symmetric:
            rotation = align_symmetric_rotation(rotation, track.rotation)
            det.rotation = R_tc.T @ rotation
        det.track_id = track.track_id
        if stamp is not None and track.stamp is not None and stamp > track.stamp:
            velocity = (centre - track.translation) / (stamp - track.stamp)
            track.velocity = velocity if track.velocity is None else 0.5 * (track.velocity + velocity)
        track.translation, track.rotation, track.stamp = centre.copy(), rotation, stamp
        track.missed = 0

    @property
    def live_ids(self) -> list[str]:
        return [t.track_id for t in self._tracks]
