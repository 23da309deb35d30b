"""Helpers of scripts/evaluate_cross_domain.sh (the cross-domain benchmark, issue 17 item 4).

    python scripts/cross_domain.py intrinsics DATA --scenes N
        print the split's "fx fy cx cy" (its config.yaml); fails unless the split holds exactly N scenes
    python scripts/cross_domain.py reusable JSON MODEL --scenes N --runtime R
        exit 0 when JSON's provenance names MODEL (sha256), N scenes and runtime R, else 1
    python scripts/cross_domain.py table --seed S --scenes N --data-root DIR --out DIR --domains D... \
        --masks gt model --models NAME=FILE... [--runtime R] [--timings TSV] [--command TEXT]
        table_s<S>.md and summary_s<S>.json from the evaluation JSON <OUT>/<NAME>_<D>_s<S>_<masks>.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
from pathlib import Path

import yaml

# (key of `cleanpose eval --json`'s "overall", column title), in the table's order.
METRICS = [("iou_25", "IoU25"), ("iou_50", "IoU50"), ("10deg_5cm", "10°5cm"), ("5deg_5cm", "5°5cm"),
           ("5deg_2cm", "5°2cm")]
MASK_LABELS = {"gt": "gt_masks", "model": "predicted_masks"}
MASK_TITLES = {"gt": "ground-truth masks (the pose model alone)",
               "model": "full pipeline (shipped Mask R-CNN + point-classifier re-scoring, score >= 0.1)"}


def split_config(data: Path) -> dict:
    """The `test/config.yaml` that `cleanpose synth` wrote into `data`: {split, seed, scenes, config}."""
    path = data / "test" / "config.yaml"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: not a `cleanpose synth --split test` folder")
    return yaml.safe_load(path.read_text())


def split_intrinsics(data: Path, scenes: int) -> list[float]:
    meta = split_config(data)
    if int(meta.get("scenes", -1)) != scenes:
        # predict reads every rendered frame: a cache with more scenes would silently enlarge the split
        raise SystemExit(f"{data} holds {meta.get('scenes')} scenes, not {scenes}: remove it or use another "
                         "CROSS_DOMAIN_DATA")
    return [float(v) for v in meta["config"]["camera"]["intrinsics"]]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reusable(json_path: Path, model: Path, scenes: int, runtime: str) -> bool:
    """The evaluation JSON exists and its provenance says it came from `model` in `runtime` on a split of
    `scenes` scenes."""
    try:
        predict = json.loads(json_path.read_text())["provenance"]["predict"]
        return (predict["model"]["sha256"] == sha256(model) and int(predict["data"]["scenes"]) == scenes
                and predict["estimator"]["runtime"] == runtime)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def split_counts(data: Path) -> dict:
    """Frames and ground-truth objects of the split (its segmentation_results pickles, read by predict)."""
    files = sorted((data / "segmentation_results" / "test").glob("results_*.pkl"))
    objects = 0
    for path in files:
        with open(path, "rb") as f:
            objects += len(pickle.load(f)["gt_class_ids"])
    return {"frames": len(files), "objects": objects}


def domain_info(data: Path) -> dict:
    cfg = split_config(data)["config"]
    camera = cfg["camera"]
    return {"data": str(data), "camera": camera["preset"], "depth_model": cfg["depth_model"],
            "rgb_effects": bool(cfg.get("rgb_effects", False)), "intrinsics": camera["intrinsics"],
            "image_size": [camera["width"], camera["height"]], **split_counts(data)}


def read_timings(path: Path | None) -> dict:
    """{render: {domain: s}, predict_eval: {model: {domain: {masks label: s}}}, total: s} of the TSV the
    script appends to (kind, domain, model, label, seconds)."""
    out: dict = {"render": {}, "predict_eval": {}, "total": None}
    if path is None or not path.is_file():
        return out
    for line in path.read_text().splitlines():
        kind, domain, model, label, seconds = line.split("\t")
        if kind == "render":
            out["render"][domain] = int(seconds)
        elif kind == "predict_eval":
            out["predict_eval"].setdefault(model, {}).setdefault(domain, {})[label] = int(seconds)
        elif kind == "total":
            out["total"] = int(seconds)
    return out


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def sensor_text(info: dict) -> str:
    fx, fy, cx, cy = info["intrinsics"]
    w, h = info["image_size"]
    text = f"{info['camera']} ({w}x{h}, fx {fx:g}), {info['depth_model']} depth"
    return text + (", rgb effects" if info["rgb_effects"] else "")


def build(seed: int, scenes: int, data_root: Path, out: Path, domains: list[str], masks: list[str],
          models: list[tuple[str, Path]], timings: Path | None = None, command: str | None = None,
          runtime: str = "eager") -> dict:
    """Read the evaluation JSON of every (model, domain, masks); write the table and the summary JSON."""
    infos = {d: domain_info(data_root / f"{d}_s{seed}") for d in domains}
    results: dict = {}
    for name, _ in models:
        for d in domains:
            for m in masks:
                path = out / f"{name}_{d}_s{seed}_{MASK_LABELS[m]}.json"
                if not path.is_file():
                    raise SystemExit(f"missing evaluation {path}")
                overall = json.loads(path.read_text())["overall"]
                results.setdefault(name, {}).setdefault(d, {})[MASK_LABELS[m]] = {
                    "json": path.name, **{k: overall.get(k) for k, _ in METRICS}}
    summary = {
        "seed": seed, "scenes": scenes, "frames_per_scene": 2, "runtime": runtime, "command": command,
        "metrics": [k for k, _ in METRICS], "domains": infos,
        "models": {name: {"file": str(file), "sha256": sha256(file)} for name, file in models},
        "results": results, "timings_s": read_timings(timings),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"summary_s{seed}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / f"table_s{seed}.md").write_text(markdown(summary, masks))
    return summary


def markdown(summary: dict, masks: list[str]) -> str:
    names = list(summary["models"])
    seed, scenes = summary["seed"], summary["scenes"]
    lines = [f"# Cross-domain benchmark, test split of seed {seed}", "",
             f"{scenes} scenes x 2 views per domain (the same scenes and viewpoints in every domain; only "
             "the sensor differs). Values in percent (NOCS protocol, `cleanpose eval`); "
             f"default readout (keypoints + combined score); `--runtime {summary['runtime']}`."]
    if summary.get("command"):
        lines += ["", f"Command: `{summary['command']}`"]
    if len(names) > 1:
        lines += ["", "Each cell: " + " / ".join(f"`{n}`" for n in names) + "."]
    else:
        lines += ["", f"Model: `{names[0]}` (`{summary['models'][names[0]]['file']}`)."]
    for m in masks:
        label = MASK_LABELS[m]
        lines += ["", f"## {MASK_TITLES[m]}", "",
                  "| domain | sensor | frames / objects | " + " | ".join(t for _, t in METRICS) + " |",
                  "|---|---|---|" + "---|" * len(METRICS)]
        for d, info in summary["domains"].items():
            cells = [" / ".join(fmt(summary["results"][n][d][label][k]) for n in names) for k, _ in METRICS]
            lines.append(f"| {d} | {sensor_text(info)} | {info['frames']} / {info['objects']} | "
                         + " | ".join(cells) + " |")
    lines += ["", f"JSON: `<model>_<domain>_s{seed}_{{gt_masks,predicted_masks}}.json` beside this file "
              f"(`cleanpose eval --json`, with provenance); summary: `summary_s{seed}.json`."]
    total = summary["timings_s"].get("total")
    if total is not None:
        lines.append(f"Wall time of the run that wrote this table: {total / 60:.0f} min "
                     "(per step: summary JSON).")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("intrinsics")
    q.add_argument("data", type=Path)
    q.add_argument("--scenes", type=int, required=True)
    q = sub.add_parser("reusable")
    q.add_argument("json", type=Path)
    q.add_argument("model", type=Path)
    q.add_argument("--scenes", type=int, required=True)
    q.add_argument("--runtime", default="eager")
    q = sub.add_parser("table")
    q.add_argument("--seed", type=int, required=True)
    q.add_argument("--scenes", type=int, required=True)
    q.add_argument("--data-root", type=Path, required=True)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--domains", nargs="+", required=True)
    q.add_argument("--masks", nargs="+", choices=list(MASK_LABELS), required=True)
    q.add_argument("--models", nargs="+", required=True, help="NAME=FILE")
    q.add_argument("--runtime", default="eager")
    q.add_argument("--timings", type=Path, default=None)
    q.add_argument("--command", default=None)
    args = p.parse_args(argv)
    if args.cmd == "intrinsics":
        print(" ".join(repr(v) for v in split_intrinsics(args.data, args.scenes)))
        return 0
    if args.cmd == "reusable":
        return 0 if reusable(args.json, args.model, args.scenes, args.runtime) else 1
    models = [(spec.split("=", 1)[0], Path(spec.split("=", 1)[1])) for spec in args.models]
    build(args.seed, args.scenes, args.data_root, args.out, args.domains, args.masks, models, args.timings,
          args.command, args.runtime)
    print((args.out / f"table_s{args.seed}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
