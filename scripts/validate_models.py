"""Models side by side on validation splits (validation shape pool: unseen by training and by every test
split), default readout, runtime eager: what the domain-randomised retrain's choices (which models ship) are
made on. Test seeds are not read.

Usage: python scripts/validate_models.py [NAME=POSE_MODEL ...] [--pipeline NAME=POSE,SEGMENTER,CLASSIFIER ...]
       [--seed 7] [--scenes 60] [--out REPORT.json]
Renders (once, cached under data/) the validation split of SEED in three sensor domains, the noisy-depth
REAL275 camera (data/synth_val_s<SEED>, as scripts/validation_choices.py), simulated D435 active stereo
(data/synth_val_d435_s<SEED>) and colour-sensor and scene effects (data/synth_val_rgb_s<SEED>); runs
`cleanpose predict` + `cleanpose eval --json` for each pose model with ground-truth masks and for each full
pipeline (`--masks model` with that segmenter and point classifier), kept when present, and writes
docs/results/model_validation_s<SEED>.json (or --out) with every evaluation's provenance.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
METRICS = ("iou_25", "iou_50", "iou_75", "5deg_2cm", "5deg_5cm", "10deg_5cm")
DOMAINS = {  # name -> (data folder pattern, `cleanpose synth` flags)
    "noisy": ("data/synth_val_s{seed}", []),
    "stereo_d435": ("data/synth_val_d435_s{seed}", ["--camera", "d435", "--depth-model", "stereo"]),
    "rgb_effects": ("data/synth_val_rgb_s{seed}", ["--rgb-effects"]),
}


def cleanpose(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "cleanpose_core.cli", *argv], check=True, cwd=REPO)


def intrinsics(data: Path) -> list[str]:
    camera = yaml.safe_load((REPO / data / "val" / "config.yaml").read_text())["config"]["camera"]
    return [str(v) for v in camera["intrinsics"]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help="NAME=POSE_MODEL: evaluated with ground-truth masks")
    p.add_argument("--pipeline", action="append", default=[],
                   help="NAME=POSE_MODEL,SEGMENTER,CLASSIFIER: evaluated with the full pipeline")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scenes", type=int, default=60)
    p.add_argument("--out", help="report file (default docs/results/model_validation_s<SEED>.json)")
    args = p.parse_args()
    runs = {}  # name -> cleanpose predict options
    for spec in args.models:
        name, weights = spec.split("=", 1)
        runs[f"gt_masks/{name}"] = ["--weights", weights, "--masks", "gt"]
    for spec in args.pipeline:
        name, files = spec.split("=", 1)
        weights, segmenter, classifier = files.split(",")
        runs[f"full_pipeline/{name}"] = ["--weights", weights, "--masks", "model", "--segmenter-weights",
                                         segmenter, "--category-classifier", classifier]
    overall: dict[str, dict] = {}
    provenance: dict[str, dict] = {}
    commands = {}
    for domain, (pattern, flags) in DOMAINS.items():
        data = Path(pattern.format(seed=args.seed))
        render = ["synth", "--out", str(data), "--scenes", str(args.scenes), "--split", "val", "--seed",
                  str(args.seed), "--frames-per-scene", "2", "--workers", "2", "--quiet", *flags]
        cleanpose(*render)
        commands[domain] = "cleanpose " + " ".join(render)
        for name, options in runs.items():
            out = Path(f"results/model_validation_s{args.seed}/{domain}/{name}")
            evaluation_file = out.with_suffix(".json")
            if not evaluation_file.is_file():
                cleanpose("predict", "--data", str(data), "--split", "val", "--runtime", "eager", *options,
                          "--intrinsics", *intrinsics(data), "--out", str(out))
                cleanpose("eval", "--results", str(out), "--json", str(evaluation_file))
            evaluation = json.loads(evaluation_file.read_text())
            overall.setdefault(domain, {})[name] = {k: round(evaluation["overall"][k], 2) for k in METRICS}
            provenance[f"{domain}/{name}"] = evaluation.get("provenance")
    report = {
        "what": "models on validation splits (validation shape pool), default readout (keypoints + combined "
                "score), runtime eager; gt_masks/: the pose model alone, full_pipeline/: Mask R-CNN + point "
                "classifier re-scoring + pose model",
        "data": commands,
        "predict": "cleanpose predict --data DATA --split val --runtime eager <OPTIONS> --intrinsics <the "
                   "split's> --out OUT; cleanpose eval --results OUT --json OUT.json",
        "options": {name: " ".join(options) for name, options in runs.items()},
        "overall": overall,
        "provenance": provenance,
    }
    dest = REPO / (args.out or f"docs/results/model_validation_s{args.seed}.json")
    dest.write_text(json.dumps(report, indent=1))
    for domain, rows in overall.items():
        print(f"{domain:12s} {'run':34s} " + " ".join(f"{m:>9s}" for m in METRICS))
        for name, row in rows.items():
            print(f"{'':12s} {name:34s} " + " ".join(f"{row[m]:9.1f}" for m in METRICS))
    print(f"-> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
