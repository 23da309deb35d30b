"""Accuracy of the Estimator's runtimes against the eager reference on the validation split (issue 21).

Renders the seed-7 validation split when it is missing, runs `cleanpose predict` with each runtime, ground-
truth masks and the full pipeline (shipped models), both queue samplings (`stream`, the default, and
`per_frame`, which removes the confounder-queue draws from the comparison), evaluates, and writes
docs/results/runtime_s7.json: every figure, its difference from eager, and each run's provenance.

    OMP_NUM_THREADS=1 python scripts/validate_runtimes.py [--runtimes onnx int8] [--seed 7] [--scenes 60]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from validate_models import REPO, cleanpose, intrinsics  # the same render / predict helpers

METRICS = ("iou_25", "iou_50", "iou_75", "5deg_2cm", "5deg_5cm", "10deg_2cm", "10deg_5cm")
PIPELINE = ["--masks", "model", "--segmenter-weights", "models/segmenter_maskrcnn_mobilenet_v3.pt",
            "--category-classifier", "models/point_classifier.pt"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtimes", nargs="+", default=["onnx", "int8"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scenes", type=int, default=60)
    p.add_argument("--out", default="docs/results/runtime_s{seed}.json")
    args = p.parse_args()
    data = Path(f"data/synth_val_s{args.seed}")
    render = ["synth", "--out", str(data), "--scenes", str(args.scenes), "--split", "val", "--seed",
              str(args.seed), "--frames-per-scene", "2", "--workers", "2", "--quiet"]
    cleanpose(*render)
    camera = intrinsics(data)
    report: dict = {
        "what": "Estimator runtimes against eager on the validation split (validation shape pool), default "
                "readout; issue 21 tolerance: IoU25 and 10deg5cm within 1 point of eager",
        "render": "cleanpose " + " ".join(render),
        "command": "OMP_NUM_THREADS=1 python scripts/validate_runtimes.py " + " ".join(sys.argv[1:]),
        "note": "stream (the default queue sampling) draws fresh confounder-queue entries per image, so a "
                "flipped mask pixel or a changed detection shifts every later draw: differences of 1-2 "
                "points there are draw noise; per_frame re-seeds the sampler per image and isolates the "
                "runtime",
        "results": {}, "minus_eager": {}, "provenance": {},
    }
    for masks, options in (("gt_masks", ["--masks", "gt"]), ("full_pipeline", PIPELINE)):
        for sampling in ("per_frame", "stream"):
            key = f"{masks}/{sampling}"
            overall = {}
            for rt in ["eager", *args.runtimes]:
                out = Path(f"results/runtime_s{args.seed}/{masks}_{sampling}_{rt}")
                cleanpose("predict", "--data", str(data), "--split", "val", "--runtime", rt,
                          "--queue-sampling", sampling, *options, "--intrinsics", *camera,
                          "--out", str(out))
                cleanpose("eval", "--results", str(out), "--json", str(out.with_suffix(".json")))
                result = json.loads((REPO / out.with_suffix(".json")).read_text())
                overall[rt] = {m: round(result["overall"][m], 2) for m in METRICS}
                report["provenance"][f"{key}/{rt}"] = result.get("provenance")
            report["results"][key] = overall
            report["minus_eager"][key] = {rt: {m: round(overall[rt][m] - overall["eager"][m], 2)
                                               for m in METRICS} for rt in args.runtimes}
    out = REPO / args.out.format(seed=args.seed)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"results": report["results"], "minus_eager": report["minus_eager"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
