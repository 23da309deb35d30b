"""AP curves like the NOCS paper's figure: AP against 3D IoU, rotation-error and translation-error thresholds.

Needs an `Evaluation` computed with `fine=True` (IoU 0..1 by 0.01, 0..60°, 0..10 cm by 0.5, the sweeps of the
official `evaluate`). The rotation curve is taken at any translation (100 cm) and the translation curve at any
rotation (360°), as in the official plotting code. One line per category plus the mean (dashed). matplotlib's
Agg backend: no display needed.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402

from cleanpose_core.eval.metrics import (  # noqa: E402
    ANY_DEGREE,
    ANY_SHIFT,
    FINE_DEGREE_THRESHOLDS,
    FINE_IOU_THRESHOLDS,
    FINE_SHIFT_THRESHOLDS,
    Evaluation,
)


def _curves(evaluation: Evaluation) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """name -> (x, AP (C, X) in percent, x label) for the four curves."""
    iou_x = np.asarray(FINE_IOU_THRESHOLDS)
    iou_cols = [evaluation.iou_index(t) for t in FINE_IOU_THRESHOLDS]
    deg_x = np.asarray(FINE_DEGREE_THRESHOLDS)
    cm_x = np.asarray(FINE_SHIFT_THRESHOLDS)
    return {
        "iou": (iou_x * 100, evaluation.iou_aps[:, iou_cols] * 100, "3D IoU threshold (%)"),
        "catre_iou": (
            iou_x * 100,
            evaluation.catre_iou_aps[:, iou_cols] * 100,
            "3D IoU* (CATRE) threshold (%)",
        ),
        "rotation": (
            deg_x,
            np.stack([evaluation.pose_ap(d, ANY_SHIFT) for d in deg_x], 1) * 100,
            "rotation error threshold (degrees)",
        ),
        "translation": (
            cm_x,
            np.stack([evaluation.pose_ap(ANY_DEGREE, s) for s in cm_x], 1) * 100,
            "translation error threshold (cm)",
        ),
    }


def _draw(ax, x: np.ndarray, aps: np.ndarray, categories, xlabel: str) -> None:
    colors = plt.get_cmap("tab10")
    for c, name in enumerate(categories):
        ax.plot(x, aps[c], color=colors(c % 10), label=name)
    ax.plot(x, np.mean(aps, axis=0), color="black", linestyle="--", label="mean")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("AP (%)")
    ax.set_ylim(0, 101)  # a little headroom so curves at 100 % stay visible
    ax.set_xlim(x[0], x[-1])
    ax.grid(alpha=0.3)


def plot_ap_curves(evaluation: Evaluation, out_dir: str) -> list[str]:
    """Write ap_vs_iou.png, ap_vs_catre_iou.png, ap_vs_rotation.png, ap_vs_translation.png and the three-panel
    ap_curves.png (the NOCS figure layout) into `out_dir`; returns the paths written."""
    try:
        curves = _curves(evaluation)
    except KeyError as exc:
        raise ValueError("plot_ap_curves needs an Evaluation computed with fine=True") from exc
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, (x, aps, xlabel) in curves.items():
        fig, ax = plt.subplots(figsize=(5, 4))
        _draw(ax, x, aps, evaluation.categories, xlabel)
        ax.legend(loc="lower left" if name != "rotation" and name != "translation" else "lower right",
                  fontsize="small")
        ax.set_title(f"AP vs {xlabel.split(' threshold')[0]} ({evaluation.protocol.name})")
        fig.tight_layout()
        path = os.path.join(out_dir, f"ap_vs_{name}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, name in zip(axes, ("iou", "rotation", "translation")):
        x, aps, xlabel = curves[name]
        _draw(ax, x, aps, evaluation.categories, xlabel)
    axes[2].legend(loc="lower right", fontsize="small")
    fig.suptitle(f"{evaluation.protocol.name}: AP per category ({evaluation.num_images} images)")
    fig.tight_layout()
    path = os.path.join(out_dir, "ap_curves.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written
