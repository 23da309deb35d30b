"""Benchmark: synthetic frames per second (compose + render + depth noise + writing every file), 640x480.

Usage: python bench/bench_synth.py [--scenes 8] [--frames-per-scene 4] [--workers 2] [--out
bench/results/synth.json]
Renders a fresh split into a temporary folder with the default SynthConfig (REAL275 intrinsics, noise on),
times the whole `generate_split` call minus the one-off object-model export, and writes the figures to JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from cleanpose_core.data.synthetic.config import SynthConfig
from cleanpose_core.data.synthetic.generate import generate_split, write_object_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames-per-scene", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = parser.parse_args()

    cfg = SynthConfig()
    cfg.frames_per_scene = args.frames_per_scene
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = generate_split(tmp, "train", args.scenes, seed=0, cfg=cfg, workers=args.workers,
                                 progress=False,
                                 contact_sheet_rows=0)
        total = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        write_object_models(Path(tmp), "train", cfg)  # the same one-off export, timed alone to subtract it
        models = time.perf_counter() - t1
    frames_time = total - models
    result = {
        "benchmark": "synthetic NOCS-layout frames (render + noise + write), 640x480",
        "frames": summary.frames,
        "scenes": args.scenes,
        "frames_per_scene": args.frames_per_scene,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "seconds_total": round(total, 3),
        "seconds_object_models": round(models, 3),
        "frames_per_second": round(summary.frames / frames_time, 2),
        "frames_per_second_including_startup_and_models": round(summary.frames / total, 2),
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
