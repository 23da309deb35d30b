"""`cleanpose eval`: score a folder of standard result pickles with the official NOCS / HouseCat6D protocol.

    cleanpose eval --results DIR [--dataset nocs|housecat6d] [--json OUT.json] [--plots DIR]

Prints the overall and per-category tables, writes the evaluation JSON (DESIGN.md §4, plus a `provenance`
block:
this command and commit, and the `provenance.json` that `cleanpose predict` left in the results folder) and,
with
--plots, the AP curves. Exit code 0 on success, 2 when the results cannot be read (the message names the
file).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from cleanpose_core.eval.metrics import evaluate
from cleanpose_core.eval.protocol import PROTOCOLS
from cleanpose_core.eval.provenance import evaluation_provenance
from cleanpose_core.eval.report import build_report, print_report, write_report_json
from cleanpose_core.eval.results import ResultFileError, load_results

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score result pickles with the official NOCS / HouseCat6D mAP protocol",
        description="Score a folder of per-image result pickles (NOCS/SPD/DPDN/AG-Pose format) exactly as "
        "the official evaluation does: NOCS-style and CATRE 3D IoU mAP, rotation/translation mAP.",
    )
    parser.add_argument("--results", required=True, metavar="DIR",
                        help="folder of result pickles (NOCS: results*.pkl; HouseCat6D: test_scene*/*.pkl)")
    parser.add_argument("--dataset", choices=sorted(PROTOCOLS), default="nocs",
                        help="protocol: categories, symmetric sets, thresholds (default: nocs)")
    parser.add_argument(
        "--json", metavar="OUT.json", help="write the evaluation JSON here (values in percent)"
    )
    parser.add_argument(
        "--plots", metavar="DIR", help="write AP-vs-threshold PNGs here (adds the fine sweeps)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    protocol = PROTOCOLS[args.dataset]
    start = time.perf_counter()
    try:
        results = load_results(args.results, len(protocol.categories), layout=protocol.name)
    except ResultFileError as exc:
        print(f"cleanpose eval: {exc}", file=sys.stderr)
        return 2
    evaluation = evaluate(results, protocol, fine=args.plots is not None)
    report = build_report(evaluation)
    print_report(report, evaluation)
    if args.json:
        provenance = evaluation_provenance(args.results, protocol.name, getattr(args, "command_line", None))
        write_report_json({**report, "provenance": provenance}, args.json)
        print(f"wrote {args.json}")
    if args.plots:
        from cleanpose_core.eval.plots import plot_ap_curves  # matplotlib only when asked for

        for path in plot_ap_curves(evaluation, args.plots):
            print(f"wrote {path}")
    log.info("evaluated %d images in %.1f s", evaluation.num_images, time.perf_counter() - start)
    return 0
