"""Per-image result files in the standard NOCS / SPD / DPDN / AG-Pose format: read, validate, write.

One pickle per test image holding a dict (the official loader also accepts a list of such dicts):

    gt_class_ids (G,) int, 1-based into the category list (NOCS: bottle, bowl, camera, can, laptop, mug)
    gt_RTs (G, 4, 4)      [[s·R, t], [0, 0, 0, 1]], s = metric box diagonal, t in metres, R object -> camera
    gt_scales (G, 3)      box extents normalised to unit diagonal (metric size = s · scales)
    gt_handle_visibility (G,)  0 = mug handle hidden (the mug is then scored as y-symmetric); optional,
    default 1
    pred_class_ids (P,), pred_RTs (P, 4, 4), pred_scales (P, 3), pred_scores (P,)  same meanings
    optional: pred_bboxes (P, 4), gt_bboxes (G, 4) image boxes (y1, x1, y2, x2), image_path (str)

Differences from the official loader (`evaluate` in evaluation_utils.py), all on malformed input only: it
asserts or crashes deep inside the metric loops (or calls `exit()` on a bad RT last row); here every problem
raises `ResultFileError` naming the file and the key. Arrays keep the dtype stored in the file (float32 RTs
stay float32), because the evaluator reproduces the official arithmetic bit for bit where a value sits on a
threshold.
"""

from __future__ import annotations

import glob
import logging
import os
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cleanpose_core.geometry.rotations import similarity_to_matrix

log = logging.getLogger(__name__)

REQUIRED_KEYS = (
    "gt_class_ids",
    "gt_RTs",
    "gt_scales",
    "pred_class_ids",
    "pred_RTs",
    "pred_scales",
    "pred_scores",
)
OPTIONAL_KEYS = ("gt_handle_visibility", "pred_bboxes", "gt_bboxes", "image_path")


class ResultFileError(ValueError):
    """A result file (or in-memory result) that does not follow the standard format; the message names it."""


@dataclass(frozen=True)
class ImageResult:
    """Ground truth and predictions of one image (G ground-truth objects, P predictions). See module
    docstring."""

    gt_class_ids: np.ndarray  # (G,) int64, 1-based
    gt_RTs: np.ndarray  # (G, 4, 4) float, file dtype
    gt_scales: np.ndarray  # (G, 3) float, file dtype
    gt_handle_visibility: np.ndarray  # (G,) int64
    pred_class_ids: np.ndarray  # (P,) int64, 1-based
    pred_RTs: np.ndarray  # (P, 4, 4) float, file dtype
    pred_scales: np.ndarray  # (P, 3) float, file dtype
    pred_scores: np.ndarray  # (P,) float, file dtype
    pred_bboxes: np.ndarray | None = None  # (P, 4)
    gt_bboxes: np.ndarray | None = None  # (G, 4)
    image_path: str | None = None
    source: str = field(default="<memory>", compare=False)  # where it was read from, for messages

    def to_dict(self) -> dict[str, Any]:
        """The standard pickle dict (optional keys only when present)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in REQUIRED_KEYS + ("gt_handle_visibility",)}
        for key in ("pred_bboxes", "gt_bboxes", "image_path"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _float_array(value: Any, key: str, tail: tuple[int, ...], count: int | None, where: str) -> np.ndarray:
    """Array of shape (count, *tail), keeping a float dtype from the file (ints become float64)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ResultFileError(f"{where}: '{key}' is not an array ({exc})") from exc
    if arr.dtype == object:
        raise ResultFileError(f"{where}: '{key}' is not a numeric array (dtype object)")
    if not np.issubdtype(arr.dtype, np.floating):
        if not np.issubdtype(arr.dtype, np.number) and arr.size:
            raise ResultFileError(f"{where}: '{key}' must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if arr.size == 0 and count in (0, None):
        return arr.reshape((0,) + tail)
    if arr.ndim != 1 + len(tail) or arr.shape[1:] != tail or (count is not None and arr.shape[0] != count):
        want = f"({count if count is not None else 'n'}, {', '.join(map(str, tail))})".replace(", )", ",)")
        raise ResultFileError(f"{where}: '{key}' has shape {arr.shape}, expected {want}")
    return arr


def _id_array(value: Any, key: str, count: int | None, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or (count is not None and arr.shape[0] != count):
        raise ResultFileError(
            f"{where}: '{key}' has shape {arr.shape}, expected ({count if count is not None else 'n'},)"
        )
    if not np.issubdtype(arr.dtype, np.number) or (
        np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr)))
    ):
        raise ResultFileError(
            f"{where}: '{key}' must hold integers, got {arr.dtype} values {arr[:5].tolist()}"
        )
    return arr.astype(np.int64)


def _check_rts(rts: np.ndarray, key: str, where: str) -> None:
    if not np.all(np.isfinite(rts)):
        bad = int(np.flatnonzero(~np.isfinite(rts).all(axis=(1, 2)))[0])
        raise ResultFileError(f"{where}: '{key}'[{bad}] has non-finite entries")
    last = rts[:, 3, :] if rts.shape[0] else np.zeros((0, 4))
    wrong = np.flatnonzero(~np.all(last == np.array([0, 0, 0, 1]), axis=1))
    if wrong.size:
        raise ResultFileError(
            f"{where}: '{key}'[{int(wrong[0])}] last row is {last[wrong[0]].tolist()}, must be [0, 0, 0, 1]"
        )
    dets = np.linalg.det(rts[:, :3, :3].astype(np.float64)) if rts.shape[0] else np.zeros(0)
    if np.any(dets <= 0):
        bad = int(np.flatnonzero(dets <= 0)[0])
        raise ResultFileError(f"{where}: '{key}'[{bad}] has det(s·R) = {dets[bad]:.3g}; it must be > 0")


def validate_result(data: Any, num_categories: int, source: str = "<memory>") -> ImageResult:
    """Check one result dict against the standard format and return it as an `ImageResult`.

    Args:
        data: the unpickled dict.
        num_categories: valid class ids are 1..num_categories (6 for NOCS, 10 for HouseCat6D).
        source: file name used in every error message.
    Raises:
        ResultFileError: missing keys, wrong shapes, non-finite values, RT last row not [0, 0, 0, 1],
            non-positive det(s·R), or class ids outside 1..num_categories.
    """
    if not isinstance(data, dict):
        raise ResultFileError(f"{source}: expected a dict of arrays, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ResultFileError(f"{source}: missing key(s) {', '.join(missing)}")
    gt_ids = _id_array(data["gt_class_ids"], "gt_class_ids", None, source)
    pred_ids = _id_array(data["pred_class_ids"], "pred_class_ids", None, source)
    n_gt, n_pred = gt_ids.shape[0], pred_ids.shape[0]
    for key, ids in (("gt_class_ids", gt_ids), ("pred_class_ids", pred_ids)):
        bad = ids[(ids < 1) | (ids > num_categories)]
        if bad.size:
            raise ResultFileError(f"{source}: '{key}' holds {bad.tolist()}, outside 1..{num_categories}")
    gt_rts = _float_array(data["gt_RTs"], "gt_RTs", (4, 4), n_gt, source)
    pred_rts = _float_array(data["pred_RTs"], "pred_RTs", (4, 4), n_pred, source)
    gt_scales = _float_array(data["gt_scales"], "gt_scales", (3,), n_gt, source)
    pred_scales = _float_array(data["pred_scales"], "pred_scales", (3,), n_pred, source)
    scores = _float_array(data["pred_scores"], "pred_scores", (), n_pred, source)
    _check_rts(gt_rts, "gt_RTs", source)
    _check_rts(pred_rts, "pred_RTs", source)
    for key, arr in (("gt_scales", gt_scales), ("pred_scales", pred_scales), ("pred_scores", scores)):
        if not np.all(np.isfinite(arr)):
            raise ResultFileError(f"{source}: '{key}' has non-finite entries")
    for key, arr in (("gt_scales", gt_scales), ("pred_scales", pred_scales)):
        if np.any(arr < 0):
            raise ResultFileError(f"{source}: '{key}' has negative extents")
    if data.get("gt_handle_visibility") is None:
        # The official loader does the same (and prints "can't find gt_handle_visibility in the pkl.").
        handle = np.ones(n_gt, dtype=np.int64)
    else:
        handle = _id_array(data["gt_handle_visibility"], "gt_handle_visibility", n_gt, source)
    boxes = {}
    for key, count in (("pred_bboxes", n_pred), ("gt_bboxes", n_gt)):
        boxes[key] = None if data.get(key) is None else _float_array(data[key], key, (4,), count, source)
    image_path = data.get("image_path")
    return ImageResult(
        gt_class_ids=gt_ids,
        gt_RTs=gt_rts,
        gt_scales=gt_scales,
        gt_handle_visibility=handle,
        pred_class_ids=pred_ids,
        pred_RTs=pred_rts,
        pred_scales=pred_scales,
        pred_scores=scores,
        pred_bboxes=boxes["pred_bboxes"],
        gt_bboxes=boxes["gt_bboxes"],
        image_path=None if image_path is None else str(image_path),
        source=source,
    )


def load_result_file(path: str, num_categories: int) -> list[ImageResult]:
    """One pickle -> its image results (a file may hold one dict or, like the official loader allows, a
    list)."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except Exception as exc:
        raise ResultFileError(f"{path}: cannot be unpickled ({type(exc).__name__}: {exc})") from exc
    if isinstance(data, list):
        return [validate_result(d, num_categories, f"{path}[{i}]") for i, d in enumerate(data)]
    return [validate_result(data, num_categories, path)]


def find_result_files(directory: str, layout: str = "nocs") -> list[str]:
    """Result pickles under `directory`, sorted by path as the official scripts sort them.

    layout "nocs": `results*.pkl` in the folder (NOCS / DPDN / AG-Pose test scripts); "housecat6d":
    `test_scene*/*.pkl`. When that pattern finds nothing, every `*.pkl` below the folder is used.
    """
    if not os.path.isdir(directory):
        raise ResultFileError(f"{directory}: not a directory")
    pattern = "results*.pkl" if layout == "nocs" else os.path.join("test_scene*", "*.pkl")
    files = sorted(glob.glob(os.path.join(directory, pattern)))
    if not files:
        files = sorted(glob.glob(os.path.join(directory, "**", "*.pkl"), recursive=True))
    if not files:
        raise ResultFileError(f"{directory}: no result pickles found (looked for {pattern}, then **/*.pkl)")
    return files


def load_results(directory: str, num_categories: int, layout: str = "nocs") -> list[ImageResult]:
    """All image results of a result folder, in the official order (sorted file paths)."""
    results: list[ImageResult] = []
    for path in find_result_files(directory, layout):
        results.extend(load_result_file(path, num_categories))
    log.info("loaded %d image results from %s", len(results), directory)
    return results


def save_result(path: str, result: ImageResult | dict[str, Any], num_categories: int | None = None) -> None:
    """Write one image result as a standard pickle (validated first when given as a dict with
    `num_categories`)."""
    if isinstance(result, dict):
        if num_categories is not None:
            result = validate_result(result, num_categories, path)
        else:
            missing = [k for k in REQUIRED_KEYS if k not in result]
            if missing:
                raise ResultFileError(f"{path}: refusing to write a result without {', '.join(missing)}")
    data = result.to_dict() if isinstance(result, ImageResult) else dict(result)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def poses_to_rts(
    rotations: np.ndarray, translations: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poses in our convention -> result-file (RTs, scales), as the official test scripts store predictions.

    Args:
        rotations: (B, 3, 3) R object -> camera. translations: (B, 3) metres. sizes: (B, 3) metric box size.
    Returns:
        RTs (B, 4, 4) = [[‖size‖·R, t], [0, 0, 0, 1]] and scales (B, 3) = size / ‖size‖.
    """
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    diag = np.linalg.norm(sizes, axis=1)
    if np.any(diag <= 0):
        raise ValueError("poses_to_rts: box sizes must be non-zero")
    rts = similarity_to_matrix(np.reshape(rotations, (-1, 3, 3)), np.reshape(translations, (-1, 3)), diag)
    return rts, sizes / diag[:, None]

