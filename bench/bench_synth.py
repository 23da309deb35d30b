"""Benchmark: synthetic frames per second per depth model (compose + render + depth model + writing), 640x480.

Usage: python bench/bench_synth.py [--scenes 4] [--frames-per-scene 4] [--workers 1] [--models ideal,noisy,
stereo-d435,stereo-d415,noisy-rgb-effects] [--out bench/results/synth.json] Each model renders a fresh split
into a temporary folder (`generate_split`, no contact sheet) and the one-off object-model export, timed alone,
is subtracted. With --workers 1 the benchmark runs in this process with one ray-casting and one OpenCV thread,
so frames/s is the rate of one worker on one core; with more workers the split's process pool shares the cores
and frames/s per worker is the total divided by the workers. ideal and noisy use the REAL275 camera,
stereo-<preset> the stereo camera preset; all render at 640x480. noisy-rgb-effects is noisy with the RGB
sensor and scene effects on (`rgb_effects`: 1-3 lights, textures, the colour-sensor stage; the contact sheet's
effects-off re-render is not part of it, as no sheet is written).
The shape pool is cut to 12 instances per category to shorten the export; it does not change a frame's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

# One BLAS thread, as generate.py gives each pool worker: set before numpy loads OpenBLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402

from cleanpose_core.data.synthetic.config import SynthConfig  # noqa: E402
from cleanpose_core.data.synthetic.generate import generate_split, write_object_models  # noqa: E402

MODELS = {"ideal": ("ideal", "real275", False), "noisy": ("noisy", "real275", False),
          "stereo-d435": ("stereo", "d435", False), "stereo-d415": ("stereo", "d415", False),
          "noisy-rgb-effects": ("noisy", "real275", True)}


def config_for(model: str, frames_per_scene: int) -> SynthConfig:
    depth_model, camera, rgb_effects = MODELS[model]
    cfg = SynthConfig()
    cfg.rgb_effects = rgb_effects
    cfg.use_camera(camera)
    cfg.depth_model = depth_model
    cfg.frames_per_scene = frames_per_scene
    cfg.scene.pool_size = 12
    return cfg


def bench_model(model: str, scenes: int, frames_per_scene: int, workers: int) -> dict:
    cfg = config_for(model, frames_per_scene)
    if workers == 1:
        cfg.render.threads = 1  # one worker on one core (generate_split gives each pool worker its share)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = generate_split(tmp, "train", scenes, seed=0, cfg=cfg, workers=workers, progress=False,
                                 contact_sheet_rows=0)
        total = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        write_object_models(Path(tmp), "train", cfg)  # the same one-off export, timed alone to subtract it
        models = time.perf_counter() - t1
    fps = summary.frames / (total - models)
    return {
        "depth_model": cfg.depth_model,
        "camera": cfg.camera.preset,
        "rgb_effects": cfg.rgb_effects,
        "image_size": [cfg.camera.width, cfg.camera.height],
        "frames": summary.frames,
        "seconds_total": round(total, 3),
        "seconds_object_models": round(models, 3),
        "frames_per_second": round(fps, 2),
        "frames_per_second_per_worker": round(fps / workers, 2),
        "ms_per_frame_per_worker": round(1000.0 * workers / fps, 1),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--frames-per-scene", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if args.workers == 1:
        cv2.setNumThreads(1)  # the stereo matcher, like the ray caster, on one core

    results = {m: bench_model(m, args.scenes, args.frames_per_scene, args.workers) for m in models}
    report = {
        "benchmark": "synthetic NOCS-layout frames (compose + render + depth model + write) per depth model",
        "scenes": args.scenes,
        "frames_per_scene": args.frames_per_scene,
        "workers": args.workers,
        "threads_per_worker": 1 if args.workers == 1 else max(1, (os.cpu_count() or 1) // args.workers),
        "cpu_count": os.cpu_count(),
        "results": results,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
