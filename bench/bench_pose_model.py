"""Pose-network latency on CPU: eval forward for B = 1, 3, 6 objects in one batch, paper and lite configs.

Random weights (timing only; DINOv2/ULIP weights cannot be downloaded here). Writes bench/results/pose_model.json.
The official implementation's eval forward at the paper configuration, measured on this 2-core CPU, takes about
336 ms per object and gains nothing from batching (1,036 ms for 3 objects, 1,993 ms for 6).

    python bench/bench_pose_model.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch
import yaml

from cleanpose_core.config import from_dict
from cleanpose_core.models.cleanpose import CleanPoseConfig, build_model

REPO = Path(__file__).resolve().parents[1]


def batch(b: int, n: int, s: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    pts = torch.randn(b, n, 3, generator=generator) * 0.05 + torch.tensor([0.0, 0.0, 0.7])
    return {"pts": pts, "rgb": torch.randn(b, 3, s, s, generator=generator),
            "choose": torch.randint(0, s * s, (b, n), generator=generator),
            "category_label": torch.arange(b) % 6}


def time_config(path: Path, n_points: int, repeats: int) -> dict[str, float]:
    data = yaml.safe_load(path.read_text())
    data["kd"]["teacher_weights"] = None
    if data["image"].get("weights"):
        data["image"]["weights"] = None  # random frozen backbone: same cost
    cfg = from_dict(CleanPoseConfig, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, teacher=False, load_weights=False).eval()
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
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "pose_model.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "benchmark": "CleanPose eval forward, one batch of B objects, CPU, random weights",
        "threads": args.threads,
        "load_average_before": os.getloadavg()[0],
        "paper_N1024": time_config(REPO / "config/model/cleanpose_paper.yaml", 1024, args.repeats),
        "lite_N512": time_config(REPO / "config/model/cleanpose_lite.yaml", 512, args.repeats),
        "official_reference_ms": {"B1": 336, "B3": 1036, "B6": 1993},
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
