"""Re-run on validation data the choices that were made while looking at test seeds (issue 18 item 1).

    python scripts/validation_choices.py [--seed 7] [--scenes 60] [--weights models/cleanpose_lite.pt]

The validation split is `cleanpose synth --split val`: scenes of its own seed drawn from the validation shape
pool, which neither the training split nor any test split contains. On it, with the shipped models and the
eager reference runtime:
- pose solver and result score, ground-truth masks: keypoints (default) vs regression, combined vs detection
  score (the official readout is regression + detection); point samples per object 1 (default) / 2 / 4 / 8;
- point-classifier re-scoring weight, full pipeline (Mask R-CNN, benchmark score threshold 0.1):
  `--category-weight` 0 / 0.3 / 0.5 (default) / 0.7;
- the node's score threshold (what a robot acts on): detection precision and recall of the full pipeline at
  the default weight for thresholds 0.2 .. 0.7; a detection is correct when its 2D box overlaps an unmatched
  ground-truth box of its category with IoU >= 0.5 (greedy in score order).

Writes docs/results/validation_choices_s<SEED>.json, with the provenance of every `cleanpose eval --json` file
it read (kept under results/validation_s<SEED>/), and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ("iou_25", "iou_50", "iou_75", "catre_iou_75", "5deg_2cm", "5deg_5cm", "10deg_2cm", "10deg_5cm")
GT_RUNS = {  # name -> cleanpose predict options (ground-truth masks)
    "keypoints_combined": ["--pose-solver", "keypoints", "--score", "combined"],
    "keypoints_detection": ["--pose-solver", "keypoints", "--score", "detection"],
    "regression_combined": ["--pose-solver", "regression", "--score", "combined"],
    "regression_detection": ["--pose-solver", "regression", "--score", "detection"],
    # test-time ensemble of point samples per object (default 1 = keypoints_combined)
    **{f"point_samples_{k}": ["--point-samples", str(k)] for k in (2, 4, 8)},
}
WEIGHTS = (0.0, 0.3, 0.5, 0.7)
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def cleanpose(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "cleanpose_core.cli", *argv], check=True, cwd=REPO)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, 4) x (G, 4) (y1, x1, y2, x2) boxes -> (P, G) IoU."""
    y1, x1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    y2, x2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def precision_recall(results: Path, threshold: float) -> dict[str, float]:
    tp = n_pred = n_gt = 0
    for path in sorted(results.glob("results_*.pkl")):
        with open(path, "rb") as f:
            r = pickle.load(f)
        scores = np.asarray(r["pred_scores"])
        keep = scores >= threshold
        cls, boxes = np.asarray(r["pred_class_ids"])[keep], np.asarray(r["pred_bboxes"], float).reshape(-1, 4)
        boxes, order = boxes[keep], np.argsort(-scores[keep], kind="stable")
        gt_cls, gt_boxes = np.asarray(r["gt_class_ids"]), np.asarray(r["gt_bboxes"], float).reshape(-1, 4)
        n_pred, n_gt = n_pred + int(keep.sum()), n_gt + len(gt_cls)
        if not len(order) or not len(gt_cls):
            continue
        iou = box_iou(boxes, gt_boxes)
        used = np.zeros(len(gt_cls), bool)
        for p in order:
            ok = (gt_cls == cls[p]) & ~used & (iou[p] >= 0.5)
            if ok.any():
                used[np.argmax(np.where(ok, iou[p], -1.0))] = True
                tp += 1
    return {"precision": tp / max(n_pred, 1), "recall": tp / max(n_gt, 1), "detections": n_pred,
            "objects": n_gt}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scenes", type=int, default=60)
    p.add_argument("--weights", default="models/cleanpose_lite.pt")
    args = p.parse_args()
    data = Path(f"data/synth_val_s{args.seed}")
    out = Path(f"results/validation_s{args.seed}")
    render = ["synth", "--out", str(data), "--scenes", str(args.scenes), "--split", "val", "--seed",
              str(args.seed), "--frames-per-scene", "2", "--workers", "2", "--quiet"]
    cleanpose(*render)
    common = ["--data", str(data), "--split", "val", "--weights", args.weights, "--runtime", "eager"]
    runs = {**{name: ["--masks", "gt", *opts] for name, opts in GT_RUNS.items()},
            **{f"category_weight_{w}": ["--masks", "model", "--category-weight", str(w)] for w in WEIGHTS}}
    overall, provenance = {}, {}
    for name, opts in runs.items():
        if not (out / f"{name}.json").is_file():
            cleanpose("predict", *common, "--out", str(out / name), *opts)
            cleanpose("eval", "--results", str(out / name), "--json", str(out / f"{name}.json"))
        evaluation = json.loads((out / f"{name}.json").read_text())
        overall[name] = {k: round(evaluation["overall"][k], 2) for k in METRICS}
        provenance[name] = evaluation.get("provenance")
    thresholds = {str(t): precision_recall(out / "category_weight_0.5", t) for t in THRESHOLDS}

    report = {
        "what": "choices re-run on the validation split (validation shape pool, unseen by training and by "
                "every test split); shipped models, runtime eager",
        "data": "cleanpose " + " ".join(render),
        "predict": f"cleanpose predict {' '.join(common)} --out {out}/<NAME> <OPTIONS>",
        "options": {name: " ".join(opts) for name, opts in runs.items()},
        "evaluations": f"{out}/<NAME>.json (with provenance)",
        "overall": overall,
        "score_threshold_precision_recall": {
            "rule": "full pipeline, category_weight 0.5; correct = 2D box IoU >= 0.5 with an unmatched "
                    "ground-truth box of the same category, greedy in score order",
            **thresholds},
        "provenance": provenance,  # per run: what `cleanpose eval --json` recorded (model sha256, split, ...)
    }
    dest = REPO / f"docs/results/validation_choices_s{args.seed}.json"
    dest.write_text(json.dumps(report, indent=1))
    print(f"{'run':24s} " + " ".join(f"{m:>9s}" for m in METRICS))
    for name, row in overall.items():
        print(f"{name:24s} " + " ".join(f"{row[m]:9.1f}" for m in METRICS))
    for t, pr in thresholds.items():
        print(f"score >= {t}: precision {pr['precision']:.3f} recall {pr['recall']:.3f} ({pr['detections']} "
              f"detections, {pr['objects']} objects)")
    print(f"-> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
