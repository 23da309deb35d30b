"""The one command line: `cleanpose <command> ...`.

Each command lives next to the code it drives, in a module exposing `register(subparsers)`, which adds its
parser and sets `func` (a callable taking the parsed args and returning an exit code). This file only wires
them; it contains no logic of its own (STYLE.md §5).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define sub-commands, in the order they appear in `cleanpose --help`.
COMMAND_MODULES = (
    "cleanpose_core.eval.cli",  # eval
    "cleanpose_core.models.cli",  # model-info
    "cleanpose_core.train.cli",  # train, teacher, queue-init, train-seg, train-classifier
    "cleanpose_core.data.synthetic.cli",  # synth
    "cleanpose_core.inference.predict",  # predict
    "cleanpose_core.inference.export_cli",  # export
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cleanpose", description="CleanPose: category-level 9DoF pose from RGB-D."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # the command as given: result files record it (eval/provenance.py)
    args.command_line = ["cleanpose", *argv]
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
