"""Markdown results table from `cleanpose eval --json` reports: one row per method, mean ± spread over its
runs.

    python scripts/results_table.py "CleanPose lite=a.json,b.json" "AG-Pose lite=c.json,d.json" "box
    fit=e.json"

Spread = half the range (max - min) / 2 over a row's runs, shown when a row has more than one run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [("iou_25", "IoU25"), ("iou_50", "IoU50"), ("iou_75", "IoU75"), ("5deg_2cm", "5°2cm"),
           ("5deg_5cm", "5°5cm"), ("10deg_2cm", "10°2cm"), ("10deg_5cm", "10°5cm")]


def cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {(max(values) - min(values)) / 2:.1f}"


def table(rows: list[tuple[str, list[Path]]]) -> str:
    lines = ["| method | runs | " + " | ".join(name for _, name in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for method, files in rows:
        reports = [json.loads(f.read_text())["overall"] for f in files]
        cells = [cell([r[key] for r in reports]) for key, _ in COLUMNS]
        lines.append(f"| {method} | {len(files)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or any("=" not in a for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    rows = [(name, [Path(p) for p in files.split(",")]) for name, files in (a.split("=", 1) for a in argv)]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
