"""Frame-to-frame identity for detections: stable ids for TF frame names, and stable frames for symmetric
objects.

A deliberately simple tracker: detections are matched to live tracks by the Hungarian algorithm (scipy) on
centre distance, gated by `max_distance`; a track of another category matches only within half that distance
and only when no track of the detection's own category is as good (the segmenter sometimes names one object
two
ways: one object must keep one frame), and a second detection within half a gate of a matched one is a
duplicate of that object and opens no track. Each track keeps score-weighted category votes; after `min_hits`
detections in consecutive frames it is confirmed (a sporadic false positive rarely is) and gets its name
`<category>_<id>` (`Detection.track_label`, the TF frame), from the votes at that moment, and keeps it.
Unmatched detections open new tracks; tracks unseen for more than `max_missed` frames are dropped. Ids are
never reused, so a name always means the same physical object.

Where it tracks: in a fixed frame when the caller gives the camera's pose in it (`camera_pose`, e.g. from TF
`odom` <- optical frame): objects standing still stay still there however the camera moves. Without a pose it
tracks in the camera frame and predicts each track with a constant-velocity model (when frames carry stamps),
so a smoothly moving camera does not push objects out of the gate.

Symmetric categories (rotation about the object's y axis unobservable): the network's rotation about y is
arbitrary and may spin from frame to frame. The tracker picks, among the equivalent rotations R·Ry(θ), the one
closest to the track's previous rotation (closed form), and for a new track the one whose object z axis faces
the camera, so a symmetric object's TF frame stays still when the object does.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

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


SMOOTHING = 0.3  # weight of a new observation in a track's centre, in a fixed tracking frame


def _touches_border(det: Detection, image_size: tuple[int, int] | None, margin: int = 2) -> bool:
    if image_size is None:
        return False
    x0, y0, x1, y1 = det.mask_bbox
    return x0 < margin or y0 < margin or x1 >= image_size[0] - margin or y1 >= image_size[1] - margin


@dataclass
class _Track:
    track_id: str
    translation: np.ndarray  # in the tracking frame
    rotation: np.ndarray
    stamp: float | None = None
    velocity: np.ndarray | None = None  # m/s in the tracking frame, from the last two observations
    missed: int = 0
    streak: int = 0  # detections in consecutive frames
    votes: Counter = field(default_factory=Counter)  # category -> summed detection score
    label: str | None = None  # `<category>_<id>`, fixed when the track is confirmed
    diagonal: float = 0.0  # metres, of the object's box (latest estimate)

    @property
    def category(self) -> str:
        return max(self.votes.items(), key=lambda kv: kv[1])[0]

    def predicted(self, stamp: float | None) -> np.ndarray:
        if self.velocity is None or stamp is None or self.stamp is None:
            return self.translation
        return self.translation + self.velocity * float(np.clip(stamp - self.stamp, 0.0, 1.0))


class PoseTracker:
    """Assigns `track_id` (and, once confirmed, `track_label`) to detections across frames of one camera."""

    def __init__(self, max_distance: float = 0.10, max_missed: int = 100, min_hits: int = 3):
        self.configure(max_distance, max_missed, min_hits)
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)

    def configure(self, max_distance: float, max_missed: int, min_hits: int = 3) -> None:
        """Change the gates (a node's run-time parameters); live tracks are kept."""
        if max_distance <= 0 or max_missed < 0 or min_hits < 1:
            raise ValueError("max_distance must be > 0 m, max_missed >= 0 and min_hits >= 1")
        self.max_distance = max_distance  # metres between a track's (predicted) centre and a detection
        self.max_missed = max_missed      # frames a track survives without a detection
        self.min_hits = min_hits          # consecutive detections before a track is confirmed (named)

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
               stamp: float | None = None, image_size: tuple[int, int] | None = None) -> list[Detection]:
        """Set `track_id`, `track_label` (confirmed tracks) and, for symmetric objects, a stabilised rotation
        on each detection, in place.

        Args:
            detections: this frame's detections, poses in the camera frame.
            camera_pose: (4, 4) pose of the camera in the tracking frame, or None to track in the camera
            frame.
                Keep it None or not-None for the whole life of the tracker, or `rebase` when it changes.
            stamp: the frame's time in seconds (the motion model's clock), or None.
            image_size: (width, height): detections whose mask touches the image border are cut off, so their
                centre is biased; they may join a track within twice the gate and move its centre less.
        """
        R_tc, t_tc = (
            (np.eye(3), np.zeros(3)) if camera_pose is None else (camera_pose[:3, :3], camera_pose[:3, 3])
        )
        moving_frame = camera_pose is None
        centres = [R_tc @ d.translation + t_tc for d in detections]
        cut = np.array([_touches_border(d, image_size) for d in detections], bool)
        pairs: list[tuple[int, int]] = []
        if detections and self._tracks:
            predicted = [t.predicted(stamp if moving_frame else None) for t in self._tracks]
            dist = np.array([[np.linalg.norm(c - p) for p in predicted] for c in centres])
            same = np.array([[d.category in t.votes for t in self._tracks] for d in detections])
            # Another category costs a full gate extra, so a same-category track in the gate always wins.
            rows, cols = linear_sum_assignment(dist + np.where(same, 0.0, self.max_distance))
            # A large object's centre moves with what is visible of it (a laptop seen from its edge): the gate
            # grows to half the track's box diagonal.
            size_gate = np.array([self._gate(t) for t in self._tracks])[None, :]
            gate = np.where(same, size_gate, 0.5 * size_gate) * np.where(cut, 2.0, 1.0)[:, None]
            pairs = [(r, c) for r, c in zip(rows, cols) if dist[r, c] <= gate[r, c]]
        matched = {j for _, j in pairs}
        for i, j in pairs:
            weight = 1.0 if moving_frame else SMOOTHING * (0.3 if cut[i] else 1.0)
            self._assign(detections[i], self._tracks[j], R_tc, centres[i], stamp, weight)
        for i in sorted(set(range(len(detections))) - {i for i, _ in pairs}):
            det = detections[i]
            # Two objects cannot share a place: a second detection this close to a tracked one is the
            # segmenter seeing one object twice (a camera's lens as a can). It keeps no track and no TF frame.
            if any(
                np.linalg.norm(centres[i] - centres[i2]) <= 0.5 * self._gate(self._tracks[j])
                for i2, j in pairs
            ):
                det.track_id = det.track_label = None
                continue
            if det.symmetric:
                det.rotation = align_symmetric_rotation(det.rotation, None)
            track = _Track(str(next(self._ids)), centres[i], R_tc @ det.rotation, stamp)
            self._tracks.append(track)
            matched.add(len(self._tracks) - 1)
            self._count(det, track)
        for j, track in enumerate(self._tracks):
            if j not in matched:
                track.missed += 1
                track.streak = 0
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return detections

    def _gate(self, track: _Track) -> float:
        return max(self.max_distance, 0.5 * track.diagonal)

    def _count(self, det: Detection, track: _Track) -> None:
        track.diagonal = float(np.linalg.norm(det.size))
        track.streak += 1
        track.votes[det.category] += max(float(det.score), 1e-3)
        if track.label is None and track.streak >= self.min_hits:
            track.label = f"{track.category}_{track.track_id}"
        det.track_id, det.track_label = track.track_id, track.label

    def _assign(self, det: Detection, track: _Track, R_tc: np.ndarray, centre: np.ndarray,
                stamp: float | None, weight: float) -> None:
        rotation = R_tc @ det.rotation  # in the tracking frame
        if det.symmetric:
            rotation = align_symmetric_rotation(rotation, track.rotation)
            det.rotation = R_tc.T @ rotation
        if stamp is not None and track.stamp is not None and stamp > track.stamp:
            velocity = (centre - track.translation) / (stamp - track.stamp)
            track.velocity = velocity if track.velocity is None else 0.5 * (track.velocity + velocity)
        # In a fixed frame the track's centre averages its views (weight < 1): a partial view pulls a single
        # estimate off by several cm; SMOOTHING still follows an object that is moved.
        centre = track.translation + weight * (centre - track.translation)
        track.translation, track.rotation, track.stamp = centre.copy(), rotation, stamp
        track.missed = 0
        self._count(det, track)

    @property
    def live_ids(self) -> list[str]:
        return [t.track_id for t in self._tracks]
