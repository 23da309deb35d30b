"""Benchmark: segmentation latency per 640x480 frame on the CPU (2 threads by default), per backend.

Usage: python bench/bench_segmentation.py [--threads 2 1] [--repeats 10] [--resnet50] [--out
bench/results/segmentation.json]

Mask R-CNN is timed with random weights and the shipped inference settings (`MaskRCNNInference` defaults).
Random weights score every class about equally, so a real score threshold would drop every detection and skip
the mask head, which is not what a trained model does. The score threshold is therefore 0 and
`box_detections_per_img` is set to the number of objects (1, 3, 6, 20): the mask head then runs on exactly
that many detections, as it does for a trained model on a frame with that many objects. The depth tabletop
backend is timed on an analytic depth image (a tilted plane with boxes standing on it).
Latency is measured through `Segmenter.segment` (input checks, network, mask thresholding, post-filter).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cleanpose_core.config import to_dict
from cleanpose_core.geometry.camera import REAL275_INTRINSICS
from cleanpose_core.segmentation import build_segmenter
from cleanpose_core.models.maskrcnn import MaskRCNNInference

H, W = 480, 640


def tabletop_depth() -> np.ndarray:
    """(H, W) float32 metres: a plane 0.55 m from the camera, tilted 45 degrees, with three boxes on it."""
    fx, fy, cx, cy = REAL275_INTRINSICS
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones((H, W))], -1)
    normal = np.array([0.0, -np.sqrt(0.5), -np.sqrt(0.5)])  # table normal towards the camera (up = -y)
    depth = 0.55 / np.maximum(rays @ -normal, 1e-6)
    for v0, u0, size in ((260, 180, 70), (230, 330, 90), (300, 470, 60)):
        depth[v0 - size: v0, u0: u0 + size] -= 0.06
    return np.where(depth < 2.0, depth, 0.0).astype(np.float32)


def frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(60, 200, (H, W, 3), dtype=np.uint8)
    for v0, u0, size in ((260, 180, 70), (230, 330, 90), (300, 470, 60)):
        rgb[v0 - size: v0, u0: u0 + size] = rng.integers(0, 255, 3, dtype=np.uint8)
    return rgb


def time_segmenter(seg, rgb: np.ndarray, depth: np.ndarray, repeats: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        seg.segment(rgb, depth)
    times, n = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = seg.segment(rgb, depth)
        times.append((time.perf_counter() - t0) * 1000.0)
        n.append(len(out))
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(times[0], 1),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
        "mean_ms": round(statistics.fmean(times), 1),
        "instances_returned": int(statistics.median(n)),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="torch CPU thread counts to time")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 3, 6, 20])
    parser.add_argument(
        "--resnet50", action="store_true", help="also time the ResNet50-FPN preset (3 objects)"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "segmentation.json"))
    args = parser.parse_args()

    rgb, depth = frame(), tabletop_depth()
    no_filter = dict(score_threshold=0.0, min_mask_area=0, min_points=0, max_objects=100)
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        res = results[f"{threads}_threads"] = {}
        for n in args.objects:
            seg = build_segmenter("maskrcnn", random_weights=True, device="cpu", backbone="mobilenet_v3",
                                  box_detections_per_img=n, **no_filter)
            res[f"maskrcnn_mobilenet_v3_{n}obj"] = time_segmenter(seg, rgb, depth, args.repeats)
            key = f"maskrcnn_mobilenet_v3_{n}obj"
            print(
                f"{threads} threads, maskrcnn mobilenet_v3, {n} objects: {res[key]}",
                flush=True,
            )
        if args.resnet50:
            seg = build_segmenter("maskrcnn", random_weights=True, device="cpu", backbone="resnet50",
                                  box_detections_per_img=3, **no_filter)
            res["maskrcnn_resnet50_3obj"] = time_segmenter(seg, rgb, depth, max(3, args.repeats // 3))
            print(
                f"{threads} threads, maskrcnn resnet50, 3 objects: {res['maskrcnn_resnet50_3obj']}",
                flush=True,
            )
        seg = build_segmenter("depth_tabletop", min_points=0)
        res["depth_tabletop"] = time_segmenter(seg, rgb, depth, args.repeats)
        print(f"{threads} threads, depth_tabletop: {res['depth_tabletop']}", flush=True)

    report = {
        "benchmark": "segmentation latency per 640x480 frame (Segmenter.segment), CPU, "
        "random Mask R-CNN weights",
        "note": "results per torch thread count; on a shared machine the minimum is the best estimate of the "
        "uncontended latency, the median shows what other processes cost",
        "maskrcnn_inference_settings": to_dict(MaskRCNNInference()),
        "results": results,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
