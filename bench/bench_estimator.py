"""End-to-end Estimator latency per 640x480 frame on CPU: segmentation + preprocessing + one batched pose
forward.

Default (the shipped models are in models/): one `Estimator.estimate` call per frame, Mask R-CNN and the point
classifier's re-scoring (part of "segmentation") included, on synthetic test frames where the segmenter finds
at least n objects, with `max_objects = n` (n = 1, 3, 6). `--random-weights` (or no shipped models): random
lite pose and Mask R-CNN weights; random masks do not cover n real objects, so a frame's time is measured as
its two halves: the segmenter asked for n detections (score threshold 0, at most n), plus preprocessing and
the batched pose forward on n ground-truth object masks. `--segmenter depth_tabletop`: the depth-only backend
(plane + regions above it, named by the point classifier) in place of Mask R-CNN. Writes
bench/results/estimator.json (estimator_depth_tabletop.json).

`--baseline`: the eager path (`runtime: eager`, the reference) and the default path (`runtime: auto`) built
side by side and run interleaved, frame by frame, on the same frames; per-path medians for 1/3/6 objects and
`speedup_3_objects` (eager median / default median), load average before and after. Writes
bench/results/estimator_baseline.json.

    python bench/bench_estimator.py [--threads 2] [--repeats 8] [--random-weights | --segmenter
    depth_tabletop]
    python bench/bench_estimator.py --baseline [--repeats 12]
    python bench/bench_estimator.py --compiled-ops [--repeats 30]
    python bench/bench_estimator.py --point-samples 4 [--repeats 16]

`--compiled-ops`: the default Estimator at 3 objects with PointNet++'s index ops as numba-compiled loops and
with their vectorised paths (`ops.cpu_kernels.AVAILABLE` switched frame by frame, interleaved); writes
bench/results/estimator_compiled_ops.json.

`--point-samples K`: the default Estimator (one point sample per object) and the same with K samples (the
test-time ensemble), interleaved frame by frame at 3 objects; writes
bench/results/estimator_point_samples.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import warnings
from pathlib import Path

import omp_passive  # noqa: F401  (before torch: the node's OpenMP wait policy)
import numpy as np
import torch
import yaml

from cleanpose_core.config import from_dict, to_dict
from cleanpose_core.data.synthetic.config import SynthConfig
from cleanpose_core.data.synthetic.generate import intrinsics_of, scene_rng
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.data.synthetic.scene import compose_scene
from cleanpose_core.inference.estimator import (
    FRAME_SEGMENTERS,
    SHIPPED_POSE_MODEL,
    Estimator,
    EstimatorConfig,
)
from cleanpose_core.io import trainable_state_dict
from cleanpose_core.models.cleanpose import CleanPoseConfig, build_model
from cleanpose_core.ops import cpu_kernels
from cleanpose_core.segmentation import build_segmenter
from cleanpose_core.segmentation.maskrcnn import DEFAULT_WEIGHTS as SHIPPED_SEGMENTER

REPO = Path(__file__).resolve().parents[1]
SEGMENTATION = {"maskrcnn": "Mask R-CNN MobileNetV3 + point classifier re-scoring",
                "depth_tabletop": "depth-tabletop segmentation named by the point classifier"}


def scene_with_objects(n: int):
    cfg = SynthConfig()
    for seed in range(200):
        rng = scene_rng(seed, "test", 0)
        scene = compose_scene(rng, "test", cfg.scene, cfg.camera, cfg.render, 1)
        K = intrinsics_of(cfg)
        frame = SceneRenderer(scene, K, 0, False).render(*scene.camera_poses[0], rng, 0.0)
        masks = [frame.instance == k for k in range(len(scene.objects))]
        keep = [k for k, m in enumerate(masks) if m.sum() > 300]
        if len(keep) >= n:
            labels = [scene.objects[k].shape.category for k in keep]
            return frame.rgb, frame.depth.astype(np.float32), K, np.stack([masks[k] for k in keep]), labels
    raise RuntimeError(f"no scene with {n} visible objects")


def frames_with_detections(est: Estimator, n: int, seeds=range(300)):
    """First synthetic test frame on which the shipped segmenter finds at least n objects."""
    cfg = SynthConfig()
    K = intrinsics_of(cfg)
    for seed in seeds:
        rng = scene_rng(seed, "test", 0)
        scene = compose_scene(rng, "test", cfg.scene, cfg.camera, cfg.render, 1)
        if len(scene.objects) < n:
            continue
        frame = SceneRenderer(scene, K, 0, False).render(*scene.camera_poses[0], rng, 0.0)
        depth = frame.depth.astype(np.float32)
        if len(est.estimate(frame.rgb, depth, K, "m").detections) >= n:
            return frame.rgb, depth, K
    raise RuntimeError(f"no synthetic test frame with {n} detected objects")


def shipped_end_to_end(repeats: int, segmenter: str) -> dict:
    results = {}
    for n in (1, 3, 6):
        est = Estimator(EstimatorConfig(device="cpu", max_objects=n, segmenter=segmenter))
        rgb, depth, K = frames_with_detections(est, n)
        results[f"{n}_objects"] = timed(lambda: est.estimate(rgb, depth, K, "m"), repeats)
        results[f"{n}_objects"]["end_to_end_ms"] = results[f"{n}_objects"]["total_ms_median"]
        print(n, results[f"{n}_objects"], flush=True)
    return results


def interleaved(ests: dict, frame: tuple, repeats: int) -> dict[object, list]:
    """Every Estimator on the same frame, alternating call by call (order reversed every other round), so
    their timings share one load: {name: [FrameResult]}."""
    rgb, depth, K = frame
    for est in ests.values():
        est.estimate(rgb, depth, K, "m")  # warm-up
    runs: dict = {name: [] for name in ests}
    for i in range(repeats):
        order = list(ests.items()) if i % 2 == 0 else list(ests.items())[::-1]
        for name, est in order:
            runs[name].append(est.estimate(rgb, depth, K, "m"))
    return runs


def interleaved_baseline(repeats: int, segmenter: str) -> dict:
    """Eager and default Estimators on the same frame, alternating call by call: their ratio under one
    load."""
    paths = {"eager": "eager", "default": EstimatorConfig().runtime}
    results: dict = {"runtimes": {}}
    for n in (1, 3, 6):
        ests = {name: Estimator(EstimatorConfig(device="cpu", max_objects=n, segmenter=segmenter, runtime=rt))
                for name, rt in paths.items()}
        results["runtimes"] = {name: est.runtime for name, est in ests.items()}
        runs = interleaved(ests, frames_with_detections(ests["eager"], n), repeats)
        entry = {}
        for name, rs in runs.items():
            stats = {f"{k}_ms_median": round(statistics.median(r.timings_ms.get(k, 0.0) for r in rs), 1)
                     for k in ("segmentation", "preprocess", "pose", "total")}
            stats["total_ms_min"] = round(min(r.timings_ms["total"] for r in rs), 1)
            stats["objects"] = int(statistics.median(len(r.detections) for r in rs))
            entry[name] = stats
        entry["speedup"] = round(entry["eager"]["total_ms_median"] / entry["default"]["total_ms_median"], 3)
        entry["load_average_after"] = round(os.getloadavg()[0], 2)
        results[f"{n}_objects"] = entry
        print(n, json.dumps(entry), flush=True)
    return results


def compiled_ops_ab(repeats: int) -> dict:
    """The default Estimator on one 3-object frame, compiled point ops on and off alternately (the same
    outputs either way; see ops/cpu_kernels.py)."""
    if not cpu_kernels.AVAILABLE:
        raise SystemExit("--compiled-ops needs numba (and CLEANPOSE_COMPILED_OPS unset)")
    est = Estimator(EstimatorConfig(device="cpu", max_objects=3))
    rgb, depth, K = frames_with_detections(est, 3)
    runs: dict[bool, list] = {True: [], False: []}
    try:
        for flag in (True, False):  # warm-up (the first compiled call loads or compiles the loops)
            cpu_kernels.AVAILABLE = flag
            est.estimate(rgb, depth, K, "m")
        for i in range(repeats):
            for flag in ((True, False) if i % 2 else (False, True)):
                cpu_kernels.AVAILABLE = flag
                runs[flag].append(est.estimate(rgb, depth, K, "m").timings_ms["total"])
    finally:
        cpu_kernels.AVAILABLE = True
    return {"compiled_ms_median": round(statistics.median(runs[True]), 1),
            "vectorised_ms_median": round(statistics.median(runs[False]), 1),
            "runtime": est.runtime, "objects": 3, "repeats": repeats}


def point_samples_ab(repeats: int, k: int) -> dict:
    """The default Estimator and one with `k` point samples per object on one 3-object frame, alternately."""
    ests = {1: Estimator(EstimatorConfig(device="cpu", max_objects=3)),
            k: Estimator(EstimatorConfig(device="cpu", max_objects=3, point_samples=k))}
    runs = interleaved(ests, frames_with_detections(ests[1], 3), repeats)
    keys = ("segmentation", "preprocess", "pose", "total")
    return {f"point_samples_{n}": {f"{k}_ms_median": round(statistics.median(r.timings_ms[k] for r in rs), 1)
                                   for k in keys}
            for n, rs in runs.items()} | {"runtime": ests[1].runtime, "objects": 3, "repeats": repeats}


def lite_model_file(directory: Path) -> Path:
    data = yaml.safe_load((REPO / "config/model/cleanpose_lite.yaml").read_text())
    data["kd"]["teacher_weights"] = None
    cfg = from_dict(CleanPoseConfig, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, teacher=False)
    path = directory / "lite_random.pt"
    torch.save({"model": trainable_state_dict(model), "model_config": to_dict(cfg), "n_points": 512}, path)
    return path


def timed(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up
    runs = [fn() for _ in range(repeats)]
    out = {}
    for key in ("segmentation", "preprocess", "pose", "total"):
        values = [r.timings_ms.get(key, 0.0) for r in runs]
        out[f"{key}_ms_median"] = round(statistics.median(values), 1)
    # On a shared machine the minimum is the best estimate of the uncontended latency; the median shows the
    # load.
    out["total_ms_min"] = round(min(r.timings_ms.get("total", 0.0) for r in runs), 1)
    out["objects"] = int(statistics.median([len(r.detections) for r in runs]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--random-weights", action="store_true", help="time untrained models (two halves)")
    parser.add_argument(
        "--segmenter",
        choices=FRAME_SEGMENTERS,
        default="maskrcnn",
        help="segmentation backend of the shipped pipeline (depth_tabletop: named by the point classifier)",
    )
    parser.add_argument("--baseline", action="store_true",
                        help="eager and default paths interleaved frame by frame (estimator_baseline.json)")
    parser.add_argument("--compiled-ops", action="store_true",
                        help="compiled vs vectorised point ops, interleaved (estimator_compiled_ops.json)")
    parser.add_argument("--point-samples", type=int, metavar="K",
                        help="1 vs K point samples per object, interleaved (estimator_point_samples.json)")
    parser.add_argument(
        "--out",
        default=None,
        help="default bench/results/estimator.json (estimator_depth_tabletop.json for that backend)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = SHIPPED_POSE_MODEL.is_file() and SHIPPED_SEGMENTER.is_file() and not args.random_weights
    if args.segmenter != "maskrcnn" and not shipped:
        parser.error("--segmenter depth_tabletop times the shipped models (drop --random-weights)")
    suffix = "" if args.segmenter == "maskrcnn" else f"_{args.segmenter}"
    if args.point_samples:
        if not shipped:
            parser.error("--point-samples times the shipped models (drop --random-weights)")
        load_before = round(os.getloadavg()[0], 2)
        report = {"benchmark": "Estimator.estimate per frame, shipped models, default runtime, 3 objects: 1 "
                  f"vs {args.point_samples} point samples per object, interleaved, CPU",
                  "threads": args.threads, **point_samples_ab(args.repeats, args.point_samples),
                  "load_average_before": load_before,
                  "load_average_after": round(os.getloadavg()[0], 2), "torch": torch.__version__,
                  "machine": platform.platform()}
        out = Path(args.out or REPO / "bench" / "results" / "estimator_point_samples.json")
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    if args.compiled_ops:
        if not shipped:
            parser.error("--compiled-ops times the shipped models (drop --random-weights)")
        load_before = round(os.getloadavg()[0], 2)
        report = {"benchmark": "Estimator.estimate per frame, shipped models, default runtime, 3 objects: "
                  "PointNet++ index ops compiled (numba) vs vectorised, interleaved, CPU",
                  "threads": args.threads, **compiled_ops_ab(args.repeats),
                  "load_average_before": load_before, "load_average_after": round(os.getloadavg()[0], 2),
                  "torch": torch.__version__, "machine": platform.platform()}
        out = Path(args.out or REPO / "bench" / "results" / "estimator_compiled_ops.json")
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    if args.baseline:
        if not shipped:
            parser.error("--baseline times the shipped models (drop --random-weights)")
        out = Path(args.out or REPO / "bench" / "results" / f"estimator_baseline{suffix}.json")
        load_before = round(os.getloadavg()[0], 2)
        results = interleaved_baseline(args.repeats, args.segmenter)
        report = {
            "benchmark": f"Estimator.estimate per 640x480 frame, shipped lite pose model + "
            f"{SEGMENTATION[args.segmenter]}, eager vs default runtime interleaved, CPU",
            "threads": args.threads,
            "results": results,
            "speedup_3_objects": results["3_objects"]["speedup"],
            "fps_3_objects": {
                name: round(1000.0 / results["3_objects"][name]["total_ms_median"], 2)
                for name in ("eager", "default")
            },
            "fps_3_objects_best_run": {
                name: round(1000.0 / results["3_objects"][name]["total_ms_min"], 2)
                for name in ("eager", "default")
            },
            "load_average_before": load_before,
            "load_average_after": round(os.getloadavg()[0], 2),
            "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
            "torch": torch.__version__,
            "machine": platform.platform(),
        }
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
        return
    out = Path(args.out or REPO / "bench" / "results" / f"estimator{suffix}.json")
    results = (
        shipped_end_to_end(args.repeats, args.segmenter) if shipped else random_weight_halves(args.repeats)
    )
    e2e = {n: results[f"{n}_objects"]["end_to_end_ms"] for n in (1, 3, 6)}
    report = {
        "benchmark": (f"Estimator.estimate per 640x480 frame, shipped lite pose model + "
                      f"{SEGMENTATION[args.segmenter]}, one pass, CPU" if shipped else
                      "Estimator per 640x480 frame, lite pose model + Mask R-CNN MobileNetV3, random weights "
                      "(segmentation + pose measured separately), CPU"),
        "threads": args.threads,
        "results": results,
        "end_to_end_fps_3_objects": round(1000.0 / e2e[3], 2),
        "end_to_end_ratio_6_over_1": round(e2e[6] / e2e[1], 2),
        "end_to_end_fps_3_objects_best_run": (round(1000.0 / results["3_objects"]["total_ms_min"], 2)
                                              if shipped else None),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_before": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "torch": torch.__version__,
        "machine": platform.platform(),
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))


def random_weight_halves(repeats: int) -> dict:
    rgb, depth, K, masks, labels = scene_with_objects(6)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(lite_model_file(Path(tmp)))
        for n in (1, 3, 6):
            seg = build_segmenter("maskrcnn", random_weights=True, device="cpu", box_detections_per_img=n,
                                  score_threshold=0.0, min_mask_area=0, min_points=16, max_objects=n)
            est = Estimator(
                EstimatorConfig(model_weights=weights, device="cpu", min_points=16), segmenter=seg
            )

            def segmentation():
                result = est.estimate(rgb, depth, K, "m")
                result.timings_ms = {"segmentation": result.timings_ms["segmentation"]}
                return result

            def pose_only():
                result = est.estimate(rgb, depth, K, "m", masks=masks[:n], labels=labels[:n])
                result.timings_ms["total"] = sum(
                    v for k, v in result.timings_ms.items() if k != "segmentation"
                )
                return result

            seg_ms = timed(segmentation, repeats)["segmentation_ms_median"]
            pose = timed(pose_only, repeats)
            results[f"{n}_objects"] = {"segmentation_ms_median": seg_ms, "pose_with_given_masks": pose,
                                       "end_to_end_ms": round(seg_ms + pose["total_ms_median"], 1)}
            print(n, results[f"{n}_objects"], flush=True)
    return results


if __name__ == "__main__":
    main()
