"""`cleanpose model-info --config FILE [--json]`: trainable and frozen parameter counts per top-level module.

The model is built without reading any weight file (counts do not depend on weights), so this works before
DINOv2 or the teacher are downloaded. The KD teacher is counted unless `--no-teacher` (an inference build).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from torch import nn

__all__ = ["register", "parameter_table"]


def parameter_table(model: nn.Module) -> dict[str, Any]:
    """{"modules": {name: {"trainable", "frozen", "buffers"}}, "trainable", "frozen"} over direct children."""
    modules = {}
    for name, child in model.named_children():
        params = list(child.parameters())
        modules[name] = {
            "trainable": sum(p.numel() for p in params if p.requires_grad),
            "frozen": sum(p.numel() for p in params if not p.requires_grad),
            "buffers": sum(b.numel() for b in child.buffers()),
        }
    direct = list(model.parameters(recurse=False))
    if direct:
        modules["(own)"] = {"trainable": sum(p.numel() for p in direct if p.requires_grad),
                            "frozen": sum(p.numel() for p in direct if not p.requires_grad), "buffers": 0}
    return {"modules": modules,
            "trainable": sum(m["trainable"] for m in modules.values()),
            "frozen": sum(m["frozen"] for m in modules.values())}


def _run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_yaml
    from .cleanpose import CleanPoseConfig, build_model

    try:
        cfg = load_yaml(CleanPoseConfig, args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-teacher warning is irrelevant for counting
        model = build_model(cfg, teacher=not args.no_teacher, load_weights=False)
    table = parameter_table(model)
    if args.json:
        print(json.dumps({"config": str(args.config), **table}, indent=2))
        return 0
    print(f"{args.config}: {cfg.cat_num} categories")
    print(f"{'module':<18}{'trainable':>14}{'frozen':>14}{'buffers':>12}")
    for name, row in table["modules"].items():
        print(f"{name:<18}{row['trainable']:>14,}{row['frozen']:>14,}{row['buffers']:>12,}")
    print(f"{'total':<18}{table['trainable']:>14,}{table['frozen']:>14,}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("model-info", help="parameter counts of a model config, per top-level module",
                              description=__doc__.splitlines()[0])
    p.add_argument(
        "--config", required=True, help="model config YAML (e.g. config/model/cleanpose_paper.yaml)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-teacher", action="store_true", help="leave out the KD teacher (inference build)")
    p.set_defaults(func=_run)
