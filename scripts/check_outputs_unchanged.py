"""Check that a refactor left the Estimator's outputs unchanged: the same result pickles on a fixed split.

    python scripts/check_outputs_unchanged.py record  --ref /tmp/cleanpose_ref   # on the code before a change
    python scripts/check_outputs_unchanged.py compare --ref /tmp/cleanpose_ref   # on the code after it

`record` renders a small synthetic test split once (`cleanpose synth --scenes 6 --split test --seed 99`, into
`--split-root`, reused when it is there), runs every variant below on it with the shipped models on the CPU
and keeps the result pickles under `--ref`, with a manifest of the split's files (sha256), so that `compare`
can refuse a split rendered by other code. `compare` runs the same variants into `--out` and checks every
pickle against the recorded one: the same files, the same detections in the same order, the same categories
and boxes, and scores, poses and sizes within `--atol` (default 1e-5). Exit code 0 = unchanged, 1 = a
difference (each one printed), 2 = missing reference or a changed split.

Variants (the first four through the command line, the last two through the Python API):
- `maskrcnn`: `cleanpose predict --masks model`, the full pipeline: Mask R-CNN, point-classifier re-scoring,
  then the filter;
- `maskrcnn_no_rescore`: the same with `--category-weight 0` (Mask R-CNN and the filter alone);
- `gt`: `--masks gt` (the pose model on the split's ground-truth masks);
- `depth_tabletop`: `--masks model --segmenter depth_tabletop` (objects named by the point classifier);
- `retuned_maskrcnn`, `retuned_tabletop`: an Estimator built with other thresholds, then `Estimator.retune`d
  to new ones before the frames run (what the ROS node's run-time parameters do).

Training (a few CPU steps each, on the same split): `cleanpose train-classifier`, `cleanpose teacher` (a small
PointNet++ SSG; the test split's object models and labels stand in for a training split) and `cleanpose
train-seg` (3 steps at 120 x 160). Their weights must match the recorded ones within `--atol` and their
metrics and losses too (wall times aside).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

# This checkout's code, not an installed copy (the colcon install tree on PYTHONPATH may predate new modules).
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYNTH = ["--scenes", "6", "--split", "test", "--seed", "99"]
# Every variant re-seeds the confounder-queue sampler for every image (`per_frame`), as the Estimator did
# before the `stream` default, and runs the eager float32 reference runtime (the `auto` default picks bf16
# on CPUs that have it): outputs then compare with references recorded before either existed, and no image
# depends on the others.
PER_FRAME = ["--queue-sampling", "per_frame", "--runtime", "eager"]
CLI_VARIANTS: dict[str, list[str]] = {
    "maskrcnn": ["--masks", "model", *PER_FRAME],
    "maskrcnn_no_rescore": ["--masks", "model", "--category-weight", "0", *PER_FRAME],
    "gt": ["--masks", "gt", *PER_FRAME],
    "depth_tabletop": ["--masks", "model", "--segmenter", "depth_tabletop", *PER_FRAME],
}
# (EstimatorConfig overrides at construction, Estimator.retune changes before the first frame)
RETUNED_VARIANTS: dict[str, tuple[dict, dict]] = {
    "retuned_maskrcnn": (
        {"segmenter": "maskrcnn", "score_threshold": 0.5, "category_weight": 0.5},
        {"score_threshold": 0.15, "category_weight": 0.3, "max_objects": 6, "min_points": 40},
    ),
    "retuned_tabletop": (
        {"segmenter": "depth_tabletop", "score_threshold": 0.5, "category_weight": 0.5},
        {"score_threshold": 0.2, "category_weight": 0.7, "min_mask_area": 200},
    ),
}
TEACHER_CONFIG = {
    "arch": "pointnet2_ssg",
    "points": 128,
    "batch_size": 8,
    "iterations": 6,
    "val_fraction": 0.3,
    "seed": 3,
    "device": "cpu",
    "encoder": {
        "npoints": [32, 8],
        "nsamples": [8, 8],
        "sa_mlps": [[16, 16], [16, 32]],
        "global_mlp": [32, 64],
        "fc_dims": [32, 16],
    },
}
TRAINING: dict[str, list[str]] = {  # name -> command line ({data}, {out} and {teacher_root} filled in)
    "train_classifier": ("train-classifier --data {data} --split test --out {out}/classifier.pt "
                         "--iterations 20 --batch-size 16 --seed 1 --device cpu --no-progress").split(),
    "teacher": ("teacher --arch pointnet2_ssg --data {teacher_root} --out {out}/teacher.pt "
                "--config {out}/teacher.yaml --no-progress").split(),
    "train_seg": ("train-seg --data {data} --split test --out {out}/seg.pt --iterations 3 --batch-size 2 "
                  "--min-size 120 --max-size 160 --seed 0 --device cpu --checkpoint-every 2 "
                  "--no-progress").split(),
}
TRAINING_FILES = {"train_classifier": ("classifier.pt",), "teacher": ("teacher.pt",),
                  "train_seg": ("seg.pt", "seg.pt.train.pt")}
EXACT_KEYS = ("pred_class_ids", "pred_bboxes", "gt_class_ids", "gt_bboxes", "gt_handle_visibility")
CLOSE_KEYS = ("pred_scores", "pred_RTs", "pred_scales", "gt_RTs", "gt_scales")


def split_manifest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of the files the predictions read (segmentation pickles, colour and depth)."""
    files = (
        sorted(root.glob("segmentation_results/test/*.pkl"))
        + sorted(root.glob("test/**/*_color.png"))
        + sorted(root.glob("test/**/*_depth.png"))
    )
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def ensure_split(root: Path) -> None:
    if (root / "segmentation_results" / "test").is_dir():
        return
    print(f"[check] rendering the fixed split into {root}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "cleanpose_core.cli", "synth", "--out", str(root), *SYNTH, "--quiet"],
        check=True,
        cwd=REPO,
    )


def run_variants(root: Path, out: Path) -> None:
    for name, flags in CLI_VARIANTS.items():
        print(f"[check] {name}: cleanpose predict {' '.join(flags)}", flush=True)
        subprocess.run([sys.executable, "-m", "cleanpose_core.cli", "predict", "--data", str(root),
                        "--out", str(out / name), "--device", "cpu", *flags], check=True, cwd=REPO)
    from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics
    from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
    from cleanpose_core.inference.predict import predict

    for name, (config, changes) in RETUNED_VARIANTS.items():
        print(f"[check] {name}: built with {config}, retuned to {changes}", flush=True)
        reference = dict(device="cpu", queue_sampling="per_frame", runtime="eager")
        estimator = Estimator(EstimatorConfig(**reference, **config))
        estimator.retune(**changes)
        predict(root, "test", out / name, estimator, "model", Intrinsics(*REAL275_INTRINSICS), progress=False)


def teacher_root(root: Path) -> Path:
    """A DPDN-like root whose training models and labels are the test split's (links, made once)."""
    out = root.parent / (root.name + "_as_train")
    if not out.is_dir():
        (out / "obj_models").mkdir(parents=True)
        (out / "obj_models" / "train.pkl").symlink_to(root / "obj_models" / "test.pkl")
        (out / "train").symlink_to(root / "test")
    return out


def run_training(root: Path, out: Path) -> None:
    import yaml

    for name, argv in TRAINING.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        if name == "teacher":
            (folder / "teacher.yaml").write_text(yaml.safe_dump(TEACHER_CONFIG))
        argv = [a.format(data=root, out=folder, teacher_root=teacher_root(root)) for a in argv]
        print(f"[check] {name}: cleanpose {' '.join(argv)}", flush=True)
        subprocess.run([sys.executable, "-m", "cleanpose_core.cli", *argv], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)


def compare_trees(a, b, atol: float, where: str, problems: list[str]) -> float:
    """Recursively compare two loaded artefacts; returns the largest difference of a tensor or float."""
    import torch

    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            problems.append(f"{where}: keys differ: {sorted(set(a) ^ set(b), key=str)}")
        return max([compare_trees(a[k], b[k], atol, f"{where}.{k}", problems) for k in a
                    if k in b and "second" not in str(k)] + [0.0])
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return max(
            [compare_trees(x, y, atol, f"{where}[{i}]", problems) for i, (x, y) in enumerate(zip(a, b))]
            + [0.0]
        )
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{where}: {a.dtype} {tuple(a.shape)} -> {b.dtype} {tuple(b.shape)}")
            return 0.0
        if not a.is_floating_point():
            if not torch.equal(a, b):
                problems.append(f"{where}: integer tensor differs")
            return 0.0
        diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
        if diff > atol:
            problems.append(f"{where}: differs by up to {diff:.3g}")
        return diff
    if isinstance(a, float) and isinstance(b, (int, float)):
        if abs(a - b) > atol:
            problems.append(f"{where}: {a} -> {b}")
        return abs(a - b)
    if a != b:
        problems.append(f"{where}: {a!r} -> {b!r}")
    return 0.0


def compare_training(ref: Path, new: Path, atol: float) -> tuple[list[str], dict[str, float]]:
    import torch

    problems: list[str] = []
    max_diff = 0.0
    name = ref.name
    for file in TRAINING_FILES[name]:
        if not (new / file).is_file():
            problems.append(f"{new / file} missing")
            continue
        a, b = (torch.load(d / file, map_location="cpu", weights_only=True) for d in (ref, new))
        for blob in (a, b):  # the data paths are the same; the output paths are not
            blob.get("meta", {}).pop("data", None)
        if file.endswith(".train.pt"):  # the checkpoint: its weights and data position (RNG states differ
            a = {k: a[k] for k in ("model", "step", "data")}  # only if the weights do)
            b = {k: b[k] for k in ("model", "step", "data")}
        max_diff = max(max_diff, compare_trees(a, b, atol, f"{name}/{file}", problems))
    if name == "train_seg":
        losses = [json.loads((d / "seg.pt.log.json").read_text())["losses"] for d in (ref, new)]
        max_diff = max(max_diff, compare_trees(losses[0], losses[1], atol, f"{name}/losses", problems))
    return problems, {"max_abs_diff": max_diff}


def compare_pickles(ref: Path, new: Path, atol: float) -> tuple[list[str], dict[str, float]]:
    """(differences, summary numbers) of the result pickles of one variant."""
    problems: list[str] = []
    ref_files = sorted(p.name for p in ref.glob("results_*.pkl"))
    new_files = sorted(p.name for p in new.glob("results_*.pkl"))
    if ref_files != new_files:
        return [f"{new}: files differ: only recorded {sorted(set(ref_files) - set(new_files))}, only new "
                f"{sorted(set(new_files) - set(ref_files))}"], {}
    detections, max_diff = 0, 0.0
    for name in ref_files:
        with open(ref / name, "rb") as f:
            a = pickle.load(f)
        with open(new / name, "rb") as f:
            b = pickle.load(f)
        if set(a) != set(b):
            problems.append(f"{name}: keys differ: {sorted(set(a) ^ set(b))}")
            continue
        detections += len(a["pred_class_ids"])
        for key in EXACT_KEYS:
            x, y = np.asarray(a[key]), np.asarray(b[key])
            if x.shape != y.shape or not np.array_equal(x, y):
                problems.append(f"{name}: {key} differs: recorded {x.tolist()}, new {y.tolist()}")
        for key in CLOSE_KEYS:
            x, y = np.asarray(a[key], np.float64), np.asarray(b[key], np.float64)
            if x.shape != y.shape:
                problems.append(f"{name}: {key} shape {x.shape} -> {y.shape}")
                continue
            diff = float(np.abs(x - y).max()) if x.size else 0.0
            max_diff = max(max_diff, diff)
            if diff > atol:
                problems.append(f"{name}: {key} differs by up to {diff:.3g} (> {atol})")
        if a["image_path"] != b["image_path"]:
            problems.append(f"{name}: image_path {a['image_path']} -> {b['image_path']}")
    return problems, {"images": len(ref_files), "detections": detections, "max_abs_diff": max_diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("record", "compare"))
    p.add_argument(
        "--ref", type=Path, default=Path("/tmp/cleanpose_ref"), help="recorded outputs (record writes)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("/tmp/cleanpose_new"), help="new outputs (compare writes)"
    )
    p.add_argument(
        "--split-root", type=Path, default=Path("/tmp/ref_split"), help="the fixed synthetic split"
    )
    p.add_argument("--atol", type=float, default=1e-5, help="tolerance on scores, poses and sizes")
    args = p.parse_args(argv)
    args.ref, args.out, args.split_root = (path.resolve() for path in (args.ref, args.out, args.split_root))

    if args.mode == "record":
        ensure_split(args.split_root)
        args.ref.mkdir(parents=True, exist_ok=True)
        run_variants(args.split_root, args.ref)
        run_training(args.split_root, args.ref)
        (args.ref / "split_manifest.json").write_text(
            json.dumps(split_manifest(args.split_root), indent=1) + "\n"
        )
        print(
            f"[check] recorded {len(CLI_VARIANTS) + len(RETUNED_VARIANTS)} variants and {len(TRAINING)} "
            f"training runs under {args.ref}"
        )
        return 0

    manifest = args.ref / "split_manifest.json"
    if not manifest.is_file():
        print(
            f"error: no recording under {args.ref}; run `record` on the code before the change",
            file=sys.stderr,
        )
        return 2
    if json.loads(manifest.read_text()) != split_manifest(args.split_root):
        print(f"error: the split under {args.split_root} is not the one recorded", file=sys.stderr)
        return 2
    run_variants(args.split_root, args.out)
    run_training(args.split_root, args.out)
    failed = False
    for name in list(CLI_VARIANTS) + list(RETUNED_VARIANTS):
        problems, numbers = compare_pickles(args.ref / name, args.out / name, args.atol)
        failed |= bool(problems)
        print(f"[check] {name}: {'DIFFERS' if problems else 'unchanged'} {json.dumps(numbers)}")
        for line in problems[:20]:
            print(f"    {line}")
    for name in TRAINING:
        problems, numbers = compare_training(args.ref / name, args.out / name, args.atol)
        failed |= bool(problems)
        print(f"[check] {name}: {'DIFFERS' if problems else 'unchanged'} {json.dumps(numbers)}")
        for line in problems[:20]:
            print(f"    {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
