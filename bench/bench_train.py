"""Training throughput of the lite recipe against an earlier revision, in one run (issue 18 item 5).

    python bench/bench_train.py [--baseline-rev REV] [--iterations 300] [--chunk 100]

Each revision trains its own `config/train/synthetic_lite.yaml` (the recipe as that revision ships it, with
only the data root pointed at a small rendered set, `--data`, rendered here when missing) from scratch with
the same seed. The runs are interleaved: every run advances `--chunk` iterations in turn (`cleanpose train
--resume auto`, exact resume), so a slow spell of this shared machine hits all of them alike, and each chunk's
time is the training loop's own (`trained to iteration N in S s`, model and data set-up excluded; the first
iterations after each start included). The baseline runs from a git worktree of `REV` (default: the commit
before the throughput work). A second baseline run with another seed measures the seed noise of the loss
curve, which the current code's curve must stay within.

Writes bench/results/train_throughput.json: seconds per iteration and iterations per hour of every run, the
ratio to the baseline, the loss curves (TensorBoard `loss/loss_all`, every 10 iterations), the load average
before and after, the machine and both revisions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = "config/train/synthetic_lite.yaml"  # the recipe, as each revision has it
BASELINE_REV = "8e3a673"  # main before the training-throughput changes
DONE = re.compile(r"trained to iteration (\d+) in ([0-9.]+) s")


def render(data: Path) -> None:
    if (data / "train_list.txt").is_file() or (data / "train").is_dir():
        return
    subprocess.run([sys.executable, "-m", "cleanpose_core.cli", "synth", "--out", str(data), "--scenes", "24",
                    "--split", "train", "--seed", "1", "--quiet"], check=True, cwd=REPO)


def worktree(rev: str, where: Path) -> Path:
    sha = subprocess.check_output(["git", "rev-parse", rev], cwd=REPO, text=True).strip()
    if where.is_dir():
        here = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, text=True, capture_output=True)
        if here.stdout.strip() == sha:
            return where
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=REPO, check=True)
    subprocess.run(["git", "worktree", "add", "--force", "--detach", str(where), sha], cwd=REPO, check=True,
                   capture_output=True)
    return where


def write_config(code: Path, out: Path, data: Path, seed: int) -> Path:
    cfg = yaml.safe_load((code / CONFIG).read_text())
    cfg["sources"][0]["dataset"]["root"] = str(data.resolve())
    cfg.update(seed=seed, checkpoint_every=10_000, log_every=10)
    path = out / "config.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def advance(code: Path, config: Path, run: Path, target: int) -> float:
    """Train `run` up to iteration `target` with the code in `code`; the loop's seconds."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, "-m", "cleanpose_core.cli", "train", "--config", str(config), "--out", str(run),
            "--resume", "auto", "--iterations", str(target), "--no-progress"]
    proc = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True)
    found = DONE.search(proc.stdout)
    if proc.returncode != 0 or not found or int(found.group(1)) != target:
        raise RuntimeError(f"training {run} to {target} failed ({proc.returncode}):\n{proc.stdout}\n"
                           f"{proc.stderr}")
    return float(found.group(2))


def revision(code: Path) -> str:
    return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=code, text=True).strip()


def loss_curve(run: Path) -> list[tuple[int, float]]:
    import logging

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A resumed run's writer purges the steps after its start: the accumulator says so at every resume.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return sorted({e.step: e.value for e in acc.Scalars("loss/loss_all")}.items())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-rev", default=BASELINE_REV)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--chunk", type=int, default=100)
    p.add_argument("--data", type=Path, default=REPO / "data/bench_train")
    p.add_argument("--work", type=Path, default=Path("/tmp/cleanpose_bench_train"))
    p.add_argument("--out", type=Path, default=REPO / "bench/results/train_throughput.json")
    args = p.parse_args()

    render(args.data)
    base_code = worktree(args.baseline_rev, args.work / "baseline_code")
    runs = {"baseline": (base_code, 1), "baseline_seed2": (base_code, 2), "current": (REPO, 1)}
    plan = {}  # name -> (code, config, run dir)
    for name, (code, seed) in runs.items():
        run = args.work / "runs" / name
        subprocess.run(["rm", "-rf", str(run)], check=True)
        plan[name] = (code, write_config(code, run.with_name(name + "_cfg"), args.data, seed), run)
    load_before = os.getloadavg()
    seconds = {name: 0.0 for name in plan}
    for target in range(args.chunk, args.iterations + 1, args.chunk):
        for name, (code, config, run) in plan.items():
            seconds[name] += advance(code, config, run, target)
            print(f"[bench_train] {name}: {target} iterations, {seconds[name] / target:.2f} s/it", flush=True)
    load_after = os.getloadavg()

    curves = {name: loss_curve(run) for name, (_, _, run) in plan.items()}
    base = np.array([v for _, v in curves["baseline"]])
    noise = float(np.abs(np.array([v for _, v in curves["baseline_seed2"]]) - base).mean())
    results = {}
    for name in plan:
        per_it = seconds[name] / args.iterations
        values = np.array([v for _, v in curves[name]])
        results[name] = {
            "seconds_per_iteration": per_it,
            "iterations_per_hour": 3600.0 / per_it,
            "speedup_vs_baseline": seconds["baseline"] / seconds[name],
            "mean_abs_loss_diff_vs_baseline": float(np.abs(values - base).mean()),
            "loss_all": curves[name],
        }
    report = {
        "what": "lite recipe training from scratch, each revision with its own "
                "config/train/synthetic_lite.yaml (batch 16)",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "iterations": args.iterations,
        "chunk": args.chunk,
        "data": str(args.data),
        "baseline_rev": revision(base_code),
        "current_rev": revision(REPO),
        "seed_noise_mean_abs_loss_diff": noise,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "recipes": {name: yaml.safe_load(config.read_text()) for name, (_, config, _) in plan.items()},
        "runs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for name, r in results.items():
        print(f"{name:20s} {r['seconds_per_iteration']:.2f} s/it  {r['iterations_per_hour']:6.0f} it/h  "
              f"x{r['speedup_vs_baseline']:.2f}  loss diff {r['mean_abs_loss_diff_vs_baseline']:.4f} "
              f"(seed noise {noise:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
