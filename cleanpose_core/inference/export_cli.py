"""`cleanpose export`: write the ONNX Runtime exports of the Estimator's dense parts next to their weights.

Float32 parts (`<weights stem>.<part>.onnx`) and, unless `--no-int8`, the int8 versions of the convolutional
ones (`<weights stem>.<part>.int8.onnx`, calibrated on synthetic frames: needs the synthetic engine). The
Estimator (`runtime: onnx`, `int8` or `auto`) then loads them instead of exporting at start (without an int8
file a statically quantised part runs float32); see `inference/runtime.py`. The float32 exports are checked
against the eager networks before the command returns; the int8 ones are checked for accuracy by
`scripts/validate_runtimes.py`.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]

TOLERANCE = 1e-4  # max |onnx - eager| / max |eager| per part; float32 rounding gives ~1e-6


def _run(args: argparse.Namespace) -> int:
    import torch

    from .estimator import Estimator, EstimatorConfig
    from .runtime import export_estimator, part_differences

    torch.set_num_threads(args.threads)
    settings = dict(
        model_weights=args.model_weights,
        segmenter_weights=args.segmenter_weights,
        segmenter=args.segmenter,
        device="cpu",
    )
    eager = Estimator(EstimatorConfig(runtime="eager", **settings))
    written = export_estimator(eager, int8=not args.no_int8)
    exported = Estimator(EstimatorConfig(runtime="onnx", **settings))
    differences = part_differences(eager, exported)
    report = {
        "written": [str(p) for p in written],
        "relative_difference": differences,
        "tolerance": TOLERANCE,
    }
    print(json.dumps(report, indent=2))
    return 0 if all(d <= TOLERANCE for d in differences.values()) else 1


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write ONNX Runtime exports of the networks next to their weights",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--model-weights", default=None, help="pose model file (default: the shipped lite model)")
    p.add_argument("--segmenter-weights", default=None, help="Mask R-CNN file (default: the shipped one)")
    p.add_argument(
        "--segmenter",
        default="maskrcnn",
        choices=("maskrcnn", "depth_tabletop"),
        help="depth_tabletop: export the pose network only",
    )
    p.add_argument("--no-int8", action="store_true", help="float32 exports only (no calibration)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=_run)
