"""`cleanpose train-seg` and `cleanpose train-classifier`: argument parsing only; `train_maskrcnn.train_segmenter`
and `point_classifier.train_point_classifier` do the work.

Exit codes: 0 success, 1 training diverged (non-finite loss), 2 bad configuration, data or checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys

from cleanpose_core.config import ConfigError, from_dict, read_yaml_mapping

__all__ = ["register"]

# Flags that override the config file (or the defaults); None = not given.
_OVERRIDES = ("data", "split", "out", "iterations", "batch_size", "seed", "backbone", "optimizer", "lr", "min_size",
              "max_size", "checkpoint_every", "device", "init")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-seg", help="train the Mask R-CNN segmenter on NOCS-format data",
        description="Train (from scratch), fine-tune (--init) or continue training (--resume) the Mask R-CNN "
                    "instance segmenter on data in the "
                    "DPDN/NOCS layout: synthetic data from `cleanpose synth`, or REAL275 / CAMERA25 "
                    "(--data data/real, data/camera). Writes OUT (weights), OUT.train.pt (checkpoint) and "
                    "OUT.log.json (config and losses).")
    p.add_argument("--data", help="dataset folder holding <split>_list.txt")
    p.add_argument("--split", help="list to train on (default: train)")
    p.add_argument("--out", help="weights file to write, e.g. models/segmenter_maskrcnn_mobilenet_v3.pt")
    p.add_argument("--config", help="SegTrainConfig YAML with any of the options below and more (augmentation, "
                                    "schedule); flags override it")
    p.add_argument("--iterations", type=int, help="optimizer steps to reach (default 3000)")
    p.add_argument("--batch-size", type=int, help="images per step (default 4)")
    p.add_argument("--seed", type=int, help="seed for initialisation, data order and augmentation (default 0)")
    p.add_argument("--backbone", choices=["mobilenet_v3", "resnet50"], help="default mobilenet_v3")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], help="default adamw")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    p.add_argument("--min-size", type=int, help="input shorter side in pixels (default 480)")
    p.add_argument("--max-size", type=int, help="input longer-side cap in pixels (default 640)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 250)")
    p.add_argument("--device", help="auto | cpu | cuda (default auto)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.train.pt")
    p.add_argument("--init", help="fine-tune: start from this weights file of the same architecture (e.g. the "
                                  "shipped segmenter) with a fresh schedule")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_seg)

    c = subparsers.add_parser(
        "train-classifier", help="train the point-cloud category classifier that re-scores detections",
        description="Train the PointNet category classifier (segmentation/point_classifier.py) on the ground-truth "
                    "instances of NOCS-format data (synthetic, or --source camera / real for CAMERA25 / REAL275). "
                    "The Estimator fuses its probabilities with Mask R-CNN's scores. Prints the metrics as JSON.")
    c.add_argument("--data", required=True, help="dataset root (as for `cleanpose train`)")
    c.add_argument("--out", required=True, help="file to write, e.g. models/point_classifier.pt")
    c.add_argument("--config", help="PointClassifierConfig YAML; flags override it")
    c.add_argument("--source", choices=["synthetic", "camera", "real"], help="layout of --data (default synthetic)")
    c.add_argument("--split", help="default train")
    c.add_argument("--iterations", type=int, help="default 2000")
    c.add_argument("--batch-size", type=int, help="default 64")
    c.add_argument("--seed", type=int, help="default 0")
    c.add_argument("--device", help="auto | cpu | cuda (default auto)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_train_classifier)


def _train_seg(args: argparse.Namespace) -> int:
    from cleanpose_core.io import WeightsError  # CheckpointError is one too

    from .train_maskrcnn import SegTrainConfig, train_segmenter

    try:
        options = read_yaml_mapping(args.config) if args.config else {}
        options.update({k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None})
        missing = [k for k in ("data", "out") if k not in options]
        if missing:
            raise ConfigError(f"missing {', '.join('--' + k for k in missing)} (or set them in --config)")
        cfg = from_dict(SegTrainConfig, options)
        summary = train_segmenter(cfg, resume=args.resume, progress=not args.no_progress)
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, WeightsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = summary["losses"][-1] if summary["losses"] else None
    print(json.dumps({"weights": summary["weights"], "checkpoint": summary["checkpoint"],
                      "final_step": last[0] if last else None, "final_loss": last[1] if last else None}))
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    from .point_classifier import PointClassifierConfig, train_point_classifier

    try:
        options = read_yaml_mapping(args.config) if args.config else {}
        options.update({k: getattr(args, k) for k in ("source", "split", "iterations", "batch_size", "seed", "device")
                        if getattr(args, k) is not None})
        cfg = from_dict(PointClassifierConfig, options)
        metrics = train_point_classifier(cfg, args.data, args.out, progress=not args.no_progress)
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), **metrics}))
    return 0
