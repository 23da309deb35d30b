"""The ablation table: mean ± standard deviation over training seeds, and paired tests against the first row.

    python scripts/ablation_table.py [--json OUT] "CleanPose lite=R1,R2,R3" "AG-Pose lite=R1,R2,R3" ...

Each R is one training run's result folder of `cleanpose predict` (per-image pickles; its `cleanpose eval
--json` report is R.json beside it), or several joined by '+' (the same run on several test splits: the APs
are averaged, the objects pooled). Runs pair by position: the i-th run of every row has the same training
seed. For each row after the first, against the first, per metric in TESTED:
- the per-seed paired t-test of the APs (difference of means, p);
- McNemar's exact test over every object of every paired run with ground-truth masks (objects where exactly
  one of the two succeeds; cleanpose_core/eval/paired.py).
Prints a Markdown table and the tests; --json writes both with the command line.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cleanpose_core import NOCS_CATEGORIES  # noqa: E402
from cleanpose_core.eval.paired import mcnemar, object_successes, seed_ttest  # noqa: E402
from cleanpose_core.eval.results import load_results  # noqa: E402

COLUMNS = [("iou_50", "IoU50"), ("iou_75", "IoU75"), ("5deg_2cm", "5°2cm"), ("5deg_5cm", "5°5cm"),
           ("10deg_2cm", "10°2cm"), ("10deg_5cm", "10°5cm")]
TESTED = {"5deg_2cm": (5.0, 2.0), "10deg_5cm": (10.0, 5.0)}  # metric -> (degrees, cm) of its per-object test


def run_ap(run: str) -> dict[str, float]:
    """A run's APs (percent), averaged over its splits."""
    reports = [json.loads(Path(f"{folder}.json").read_text())["overall"] for folder in run.split("+")]
    return {key: statistics.fmean(r[key] for r in reports) for key, _ in COLUMNS}


@functools.lru_cache(maxsize=None)  # the reference row's folders pair with every other row, for every metric
def folder_results(folder: str) -> list:
    return load_results(folder, len(NOCS_CATEGORIES))


def run_objects(run: str, degrees: float, cm: float, tag: str) -> dict:
    """{(tag, split, image, object): success} of a run's objects."""
    out = {}
    for folder in run.split("+"):
        results = folder_results(folder)
        out.update({(tag, folder_key(folder), *k): v
                    for k, v in object_successes(results, degrees, cm).items()})
    return out


def folder_key(folder: str) -> str:
    """The test split a result folder belongs to (its parent), so the same split pairs across models."""
    return Path(folder).parent.name


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", nargs="+", help="NAME=RUN,RUN,...; the first row is the reference")
    p.add_argument("--json", help="write the table and the tests here")
    args = p.parse_args(argv)
    rows = []
    for spec in args.rows:
        name, sep, runs = spec.partition("=")
        if not sep or not runs:
            p.error(f"expected NAME=RUN,RUN,..., got {spec!r}")
        rows.append((name, runs.split(",")))
    aps = {name: [run_ap(r) for r in runs] for name, runs in rows}

    lines = ["| method | seeds | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for name, runs in rows:
        lines.append(f"| {name} | {len(runs)} | "
                     + " | ".join(cell([a[key] for a in aps[name]]) for key, _ in COLUMNS) + " |")
    ref_name, ref_runs = rows[0]
    tests = {}
    for name, runs in rows[1:]:
        if len(runs) != len(ref_runs):
            p.error(f"{name} has {len(runs)} runs, {ref_name} {len(ref_runs)}: runs pair by seed")
        for metric, (degrees, cm) in TESTED.items():
            diff, p_seeds = seed_ttest([a[metric] for a in aps[ref_name]], [a[metric] for a in aps[name]])
            ref_objects, objects = {}, {}
            for i, (ref_run, run) in enumerate(zip(ref_runs, runs)):
                ref_objects.update(run_objects(ref_run, degrees, cm, f"seed{i}"))
                objects.update(run_objects(run, degrees, cm, f"seed{i}"))
            paired = mcnemar(ref_objects, objects)
            tests[f"{ref_name} vs {name}: {metric}"] = {
                "ap_difference_mean": round(diff, 2),
                "seed_ttest_p": None if math.isnan(p_seeds) else p_seeds,  # None: identical differences
                "objects": paired.objects, "reference_only": paired.a_only, "other_only": paired.b_only,
                "success_difference_points": round(paired.difference, 2), "mcnemar_p": paired.p_value}
    table = "\n".join(lines)
    print(table)
    print()
    for label, t in tests.items():
        p_seeds = "n/a" if t["seed_ttest_p"] is None else f"{t['seed_ttest_p']:.3g}"
        print(f"{label}: AP {t['ap_difference_mean']:+.1f} (paired t over seeds p={p_seeds}); "
              f"objects {t['objects']}: {t['reference_only']} only {label.split(' vs ')[0]}, "
              f"{t['other_only']} only the other ({t['success_difference_points']:+.1f} points, "
              f"McNemar p={t['mcnemar_p']:.3g})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["python", "scripts/ablation_table.py", *(argv or sys.argv[1:])]),
            "rows": {name: {"runs": runs, "ap": aps[name]} for name, runs in rows},
            # what `cleanpose eval --json` recorded for each evaluation read (model sha256, split, readout)
            "provenance": {folder: json.loads(Path(f"{folder}.json").read_text()).get("provenance")
                           for _, runs in rows for run in runs for folder in run.split("+")},
            "table": table, "tests": tests}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
