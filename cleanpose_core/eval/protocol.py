"""Each benchmark's evaluation settings: categories, which of them count as symmetric for IoU and for rotation
error, the mug-handle rule, and the pose thresholds (see `metrics.py` for how they are used)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cleanpose_core import EVAL_SYMMETRIC, HOUSECAT6D_CATEGORIES, NOCS_CATEGORIES, NOCS_SYMMETRIC


@dataclass(frozen=True)
class Protocol:
    """One benchmark's evaluation settings (category names are 1-based in result files; BG is index 0)."""

    name: str
    categories: tuple[str, ...]
    iou_symmetric: frozenset[str]  # NOCS-style IoU: sweep about y
    rotation_symmetric: frozenset[str]  # rotation error: angle between y axes
    force_handle_visible: bool  # HouseCat6D: gt_handle_visibility := 1 for every object
    catre_symmetric: frozenset[str] = frozenset(EVAL_SYMMETRIC)
    degree_thresholds: tuple[float, ...] = (5.0, 10.0)  # 360 is appended
    shift_thresholds: tuple[float, ...] = (2.0, 5.0)  # cm; 100 is appended
    iou_pose_threshold: float = 0.10  # pose AP only over pairs matched at this NOCS-style IoU

    def hidden_handle(self, names: np.ndarray, handle_visibility: np.ndarray) -> np.ndarray:
        """Per object: a mug whose handle is hidden, scored as y-symmetric. The official code passes
        visibility 1 for every non-mug category; HouseCat6D forces it everywhere."""
        hidden = (np.asarray(names) == "mug") & (np.asarray(handle_visibility) == 0)
        return hidden & (not self.force_handle_visible)

    def rotation_symmetric_objects(self, names: np.ndarray, handle_visibility: np.ndarray) -> np.ndarray:
        """Per object: is its rotation error the angle between y axes (symmetric category, hidden handle)?"""
        return np.isin(names, list(self.rotation_symmetric)) | self.hidden_handle(names, handle_visibility)


NOCS = Protocol(
    name="nocs",
    categories=NOCS_CATEGORIES,
    iou_symmetric=frozenset(NOCS_SYMMETRIC),
    rotation_symmetric=frozenset(NOCS_SYMMETRIC),
    force_handle_visible=False,
)
HOUSECAT6D = Protocol(
    name="housecat6d",
    categories=HOUSECAT6D_CATEGORIES,
    iou_symmetric=frozenset(EVAL_SYMMETRIC),
    rotation_symmetric=frozenset(EVAL_SYMMETRIC),
    force_handle_visible=True,
    shift_thresholds=(2.0, 5.0, 10.0),
)
PROTOCOLS = {"nocs": NOCS, "housecat6d": HOUSECAT6D}
