"""Evaluation reports: the JSON contract of DESIGN.md §4 and tables laid out like the paper's Table 1 and
Table 8.

JSON: {"overall": {key: percent}, "per_category": {category: {key: percent}}} with the keys of `METRIC_KEYS`.
`iou_*` are the official NOCS-style IoU APs, `catre_iou_*` the CATRE (true axis-aligned) ones that the
CleanPose paper marks with '*', `5deg` is 5° at any translation and `2cm` 2 cm at any rotation (the official
360°/100 cm "any" thresholds). "overall" is the plain mean over categories, as the official code reports it.
Values the official code gives as NaN (a category with predictions but no ground truth) are written as null.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from cleanpose_core.eval.metrics import ANY_DEGREE, ANY_SHIFT, Evaluation

# key -> (kind, threshold(s)); kind "nocs"/"catre" = IoU AP, "pose" = (degrees, cm).
METRICS: dict[str, tuple[str, Any]] = {
    "iou_25": ("nocs", 0.25),
    "iou_50": ("nocs", 0.50),
    "iou_75": ("nocs", 0.75),
    "catre_iou_25": ("catre", 0.25),
    "catre_iou_50": ("catre", 0.50),
    "catre_iou_75": ("catre", 0.75),
    "5deg_2cm": ("pose", (5.0, 2.0)),
    "5deg_5cm": ("pose", (5.0, 5.0)),
    "10deg_2cm": ("pose", (10.0, 2.0)),
    "10deg_5cm": ("pose", (10.0, 5.0)),
    "5deg": ("pose", (5.0, ANY_SHIFT)),
    "10deg": ("pose", (10.0, ANY_SHIFT)),
    "2cm": ("pose", (ANY_DEGREE, 2.0)),
    "5cm": ("pose", (ANY_DEGREE, 5.0)),
}
METRIC_KEYS = tuple(METRICS)

# Column headers of the printed tables (the paper's notation; '*' = CATRE IoU).
_HEADERS = {
    "iou_25": "IoU25", "iou_50": "IoU50", "iou_75": "IoU75",
    "catre_iou_25": "IoU25*", "catre_iou_50": "IoU50*", "catre_iou_75": "IoU75*",
    "5deg_2cm": "5°2cm", "5deg_5cm": "5°5cm", "10deg_2cm": "10°2cm", "10deg_5cm": "10°5cm",
    "5deg": "5°", "10deg": "10°", "2cm": "2cm", "5cm": "5cm",
}
# Table 1 of the paper: IoU (NOCS-style and CATRE) and the four combined pose metrics.
TABLE1_KEYS = ("iou_25", "iou_50", "iou_75", "catre_iou_25", "catre_iou_50", "catre_iou_75",
               "5deg_2cm", "5deg_5cm", "10deg_2cm", "10deg_5cm")


def per_category_aps(evaluation: Evaluation) -> dict[str, np.ndarray]:
    """key -> (C,) AP fractions for every key of `METRIC_KEYS`."""
    out = {}
    for key, (kind, thr) in METRICS.items():
        out[key] = evaluation.pose_ap(*thr) if kind == "pose" else evaluation.iou_ap(thr, kind)
    return out


def _percent(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value) * 100.0


def build_report(evaluation: Evaluation) -> dict[str, dict]:
    """The evaluation JSON: {"overall": {key: %}, "per_category": {name: {key: %}}} (NaN -> None)."""
    aps = per_category_aps(evaluation)
    # NaN propagates, like the official
    overall = {key: _percent(np.mean(values)) for key, values in aps.items()}
    per_category = {
        name: {key: _percent(values[c]) for key, values in aps.items()}
        for c, name in enumerate(evaluation.categories)
    }
    return {"overall": overall, "per_category": per_category}


def write_report_json(report: dict, path: str) -> None:
    """Write the report as strict JSON (no NaN literals), creating the folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def print_report(report: dict, evaluation: Evaluation | None = None, console=None) -> None:
    """Print the overall table (paper Table 1 layout) and the per-category table (Table 8 layout) with
    rich."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: wide enough that no column header gets folded
            console = Console(width=200)
    title = "Overall mAP (%)"
    if evaluation is not None:
        n_objects = int(evaluation.num_gt.sum())
        title += f" — {evaluation.protocol.name}, {evaluation.num_images} images, {n_objects} objects"
    overall = Table(title=title, caption="IoU: NOCS-style (official); IoU*: CATRE axis-aligned")
    for key in TABLE1_KEYS:
        overall.add_column(_HEADERS[key], justify="right")
    overall.add_row(*(_cell(report["overall"][k]) for k in TABLE1_KEYS))
    console.print(overall)

    per = Table(title="Per-category AP (%)")
    per.add_column("category")
    if evaluation is not None:
        per.add_column("#gt", justify="right")
        per.add_column("#pred", justify="right")
    for key in METRIC_KEYS:
        per.add_column(_HEADERS[key], justify="right")
    for c, (name, values) in enumerate(report["per_category"].items()):
        counts = [str(evaluation.num_gt[c]), str(evaluation.num_pred[c])] if evaluation is not None else []
        per.add_row(name, *counts, *(_cell(values[k]) for k in METRIC_KEYS))
    counts = (
        [str(int(evaluation.num_gt.sum())), str(int(evaluation.num_pred.sum()))]
        if evaluation is not None
        else []
    )
    per.add_row("mean", *counts, *(_cell(report["overall"][k]) for k in METRIC_KEYS), style="bold")
    console.print(per)
