"""Benchmark: NOCS evaluation of a REAL275-sized result set (3,000 images x 6 objects) from result pickles.

Usage: python bench/bench_eval.py [--images 3000] [--objects 6] [--out bench/results/eval.json]
Writes a synthetic result set to a temporary folder (each image: `--objects` ground-truth boxes of random
categories, ~90 % detected with rotation/translation/size noise, ~5 % exact copies, ~0.3 false positives,
random scores), then times `cleanpose eval`'s work: loading + validating the pickles, the official-protocol
metrics, and separately the fine sweeps used for plots. Target: < 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.eval.metrics import evaluate
from cleanpose_core.eval.protocol import NOCS
from cleanpose_core.eval.report import build_report
from cleanpose_core.eval.results import load_results, poses_to_rts, save_result


def synthetic_image(rng: np.random.Generator, n_objects: int) -> dict:
    """One image result: GT boxes and noisy predictions in the standard format."""
    n_cat = len(NOCS_CATEGORIES)
    gt_ids = rng.integers(1, n_cat + 1, size=n_objects)
    R = Rotation.random(n_objects, random_state=rng).as_matrix()
    t = np.c_[rng.uniform(-0.25, 0.25, (n_objects, 2)), rng.uniform(0.5, 1.2, n_objects)]
    size = rng.uniform(0.05, 0.25, (n_objects, 3))
    gt_rts, gt_scales = poses_to_rts(R, t, size)
    keep = rng.random(n_objects) < 0.9
    noise = Rotation.from_rotvec(rng.normal(size=(n_objects, 3)) * np.deg2rad(4.0)).as_matrix()
    exact = rng.random(n_objects) < 0.05
    p_R = np.where(exact[:, None, None], R, noise @ R)
    p_t = t + np.where(exact[:, None], 0.0, rng.normal(scale=0.015, size=(n_objects, 3)))
    p_size = size * np.where(exact[:, None], 1.0, 1 + rng.normal(scale=0.08, size=(n_objects, 3)))
    pred_rts, pred_scales = poses_to_rts(p_R[keep], p_t[keep], np.abs(p_size[keep]))
    pred_ids = gt_ids[keep]
    n_fp = rng.poisson(0.3)
    if n_fp:
        fp_rts, fp_scales = poses_to_rts(
            Rotation.random(n_fp, random_state=rng).as_matrix(),
            np.c_[rng.uniform(-0.3, 0.3, (n_fp, 2)), rng.uniform(0.5, 1.2, n_fp)],
            rng.uniform(0.05, 0.25, (n_fp, 3)),
        )
        pred_rts = np.concatenate([pred_rts, fp_rts])
        pred_scales = np.concatenate([pred_scales, fp_scales])
        pred_ids = np.concatenate([pred_ids, rng.integers(1, n_cat + 1, size=n_fp)])
    return {
        "gt_class_ids": gt_ids,
        "gt_RTs": gt_rts,
        "gt_scales": gt_scales,
        "gt_handle_visibility": (rng.random(n_objects) < 0.7).astype(np.int64),
        "pred_class_ids": pred_ids,
        "pred_RTs": pred_rts,
        "pred_scales": pred_scales,
        "pred_scores": rng.random(pred_ids.shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "eval.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.images):
            save_result(os.path.join(tmp, f"results_{i:05d}.pkl"), synthetic_image(rng, args.objects))
        t0 = time.perf_counter()
        results = load_results(tmp, len(NOCS_CATEGORIES))
        t1 = time.perf_counter()
        evaluation = evaluate(results, NOCS)
        t2 = time.perf_counter()
        fine = evaluate(results, NOCS, fine=True)
        t3 = time.perf_counter()
    report = build_report(evaluation)
    assert np.allclose(fine.pose_ap(5, 2), evaluation.pose_ap(5, 2))  # the sweeps contain the standard values
    result = {
        "benchmark": "NOCS-protocol evaluation of synthetic result pickles (REAL275 size)",
        "images": args.images,
        "objects_per_image": args.objects,
        "predictions": int(evaluation.num_pred.sum()),
        "seconds_load": round(t1 - t0, 3),
        "seconds_metrics": round(t2 - t1, 3),
        "seconds_total": round(t2 - t0, 3),
        "seconds_metrics_with_plot_sweeps": round(t3 - t2, 3),
        "target_seconds": 60,
        "overall_percent": report["overall"],
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
