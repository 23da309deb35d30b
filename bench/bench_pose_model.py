"""Pose-network latency on CPU: eval forward for B = 1, 3, 6 objects in one batch, paper and lite configs.

Random weights (timing only; DINOv2/ULIP weights cannot be downloaded here). Writes
bench/results/pose_model.json.
The official implementation's eval forward at the paper configuration, measured on this 2-core CPU, takes
about 336 ms per object and gains nothing from batching (1,036 ms for 3 objects, 1,993 ms for 6).

`--baseline`: the eager network (the reference) and the default runtime's (`EstimatorConfig.runtime` auto,
inference/runtime.py) built from the same weights and run interleaved, call by call; per-path medians and
milliseconds per object for B = 1, 3, 6, the image backbone's share (DINOv2 in the paper configuration), load
average before and after. Random weights have no int8 exports, so the parts `int8` quantises statically (the
lite ResNet backbone) run in ONNX Runtime float32 here; the dynamically quantised ones (the paper
configuration's DINOv2 and keypoint trunk) run int8. Writes
bench/results/pose_model_baseline.json.

    python bench/bench_pose_model.py [--threads 2] [--repeats 5]
    python bench/bench_pose_model.py --baseline [--repeats 8]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import os
import platform
import time
import warnings
from pathlib import Path

import omp_passive  # noqa: F401  (before torch: the node's OpenMP wait policy)
import torch
import yaml

from cleanpose_core.config import from_dict
from cleanpose_core.inference.runtime import apply_parts, pose_model_parts, resolve_runtime
from cleanpose_core.models.cleanpose import CleanPoseConfig, build_model

REPO = Path(__file__).resolve().parents[1]


def batch(b: int, n: int, s: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    pts = torch.randn(b, n, 3, generator=generator) * 0.05 + torch.tensor([0.0, 0.0, 0.7])
    return {"pts": pts, "rgb": torch.randn(b, 3, s, s, generator=generator),
            "choose": torch.randint(0, s * s, (b, n), generator=generator),
            "category_label": torch.arange(b) % 6}


def random_model(path: Path):
    data = yaml.safe_load(path.read_text())
    data["kd"]["teacher_weights"] = None
    if data["image"].get("weights"):
        data["image"]["weights"] = None  # random frozen backbone: same cost
    cfg = from_dict(CleanPoseConfig, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(cfg, teacher=False, load_weights=False).eval(), cfg


def interleaved_baseline(path: Path, n_points: int, repeats: int) -> dict:
    """Eager and default-runtime copies of one network, alternating call by call on the same batches."""
    eager, cfg = random_model(path)
    default = copy.deepcopy(eager)
    runtime = resolve_runtime("auto", torch.device("cpu"))
    apply_parts(pose_model_parts(default, None, n_points), runtime)
    models = {"eager": eager, "default": default}
    image_ms: dict[str, list[float]] = {}
    for name, model in models.items():
        def pre(module, inputs, name=name):
            image_ms.setdefault(name, []).append(-time.perf_counter())

        def post(module, inputs, output, name=name):
            image_ms[name][-1] = (image_ms[name][-1] + time.perf_counter()) * 1e3
        model.rgb_extractor.register_forward_pre_hook(pre)
        model.rgb_extractor.register_forward_hook(post)
    g = torch.Generator().manual_seed(0)
    out: dict = {"default_runtime": runtime}
    for b in (1, 3, 6):
        inputs = batch(b, n_points, cfg.image.image_size, g)
        times: dict[str, list[float]] = {name: [] for name in models}
        with torch.inference_mode():
            for model in models.values():
                model(inputs)  # warm-up
            image_ms.clear()
            for i in range(repeats):
                for name, model in (list(models.items()) if i % 2 == 0 else list(models.items())[::-1]):
                    t0 = time.perf_counter()
                    model(inputs)
                    times[name].append((time.perf_counter() - t0) * 1e3)
        entry = {}
        for name in models:
            med = statistics.median(times[name])
            entry[name] = {"ms_median": round(med, 1), "ms_min": round(min(times[name]), 1),
                           "ms_per_object": round(med / b, 1),
                           "image_backbone_ms_median": round(statistics.median(image_ms[name]), 1),
                           "rest_ms_median": round(med - statistics.median(image_ms[name]), 1)}
        entry["speedup"] = round(entry["eager"]["ms_median"] / entry["default"]["ms_median"], 3)
        entry["load_average_after"] = round(os.getloadavg()[0], 2)
        out[f"B{b}"] = entry
        print(path.stem, b, json.dumps(entry), flush=True)
    return out


def time_config(path: Path, n_points: int, repeats: int) -> dict[str, float]:
    model, cfg = random_model(path)
    g = torch.Generator().manual_seed(0)
    out = {}
    for b in (1, 3, 6):
        inputs = batch(b, n_points, cfg.image.image_size, g)
        with torch.inference_mode():
            model(inputs)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(inputs)
                times.append((time.perf_counter() - t0) * 1e3)
        out[f"ms_B{b}_median"] = round(sorted(times)[len(times) // 2], 1)
        out[f"ms_B{b}_min"] = round(min(times), 1)
    out["ratio_B6_over_B1"] = round(out["ms_B6_median"] / out["ms_B1_median"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", action="store_true",
                        help="eager and default runtime interleaved (pose_model_baseline.json)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.baseline:
        load_before = round(os.getloadavg()[0], 2)
        paper = interleaved_baseline(REPO / "config/model/cleanpose_paper.yaml", 1024, args.repeats)
        lite = interleaved_baseline(REPO / "config/model/cleanpose_lite.yaml", 512, args.repeats)
        result = {
            "benchmark": "CleanPose eval forward, eager vs default runtime interleaved, one batch of B "
            "objects, CPU, random weights",
            "threads": args.threads,
            "paper_N1024": paper,
            "lite_N512": lite,
            "paper_ms_per_object_3_objects": {
                k: paper["B3"][k]["ms_per_object"] for k in ("eager", "default")
            },
            "official_reference_ms": {"B1": 336, "B3": 1036, "B6": 1993},
            "load_average_before": load_before,
            "load_average_after": round(os.getloadavg()[0], 2),
            "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
            "torch": torch.__version__,
            "machine": platform.platform(),
        }
        out = Path(args.out or REPO / "bench" / "results" / "pose_model_baseline.json")
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(
            json.dumps({k: v for k, v in result.items() if k not in ("paper_N1024", "lite_N512")}, indent=2)
        )
        return
    args.out = args.out or str(REPO / "bench" / "results" / "pose_model.json")
    result = {
        "benchmark": "CleanPose eval forward, one batch of B objects, CPU, random weights",
        "threads": args.threads,
        "load_average_before": os.getloadavg()[0],
        "paper_N1024": time_config(REPO / "config/model/cleanpose_paper.yaml", 1024, args.repeats),
        "lite_N512": time_config(REPO / "config/model/cleanpose_lite.yaml", 512, args.repeats),
        "official_reference_ms": {"B1": 336, "B3": 1036, "B6": 1993},
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "torch": torch.__version__,
        "machine": platform.platform(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
