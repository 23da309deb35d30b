"""`cleanpose train`, `teacher`, `queue-init`, `train-seg` and `train-classifier`: argument parsing only.

The work is done by `trainer.train`, `teacher.train_teacher` / `teacher.convert_ulip2`,
`queue_init.extract_queue`, `maskrcnn.train_segmenter` and `point_classifier.train_point_classifier`; this
module maps flags onto their configs (STYLE.md §5). Exit codes: 0 success, 1 training diverged (non-finite
loss), 2 bad configuration, data or checkpoint.

Multi-process: ``torchrun --nproc_per_node 2 -m cleanpose_core.cli train --config ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..config import ConfigError, apply_overrides, from_dict, load_yaml, read_yaml_mapping, to_dict

__all__ = ["register"]

# `train-seg` flags that override its config file (or the defaults); None = not given.
_SEG_OVERRIDES = (
    "data",
    "split",
    "out",
    "iterations",
    "batch_size",
    "seed",
    "backbone",
    "optimizer",
    "lr",
    "min_size",
    "max_size",
    "checkpoint_every",
    "device",
    "init",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a pose model from a training config",
                              description="Train (or resume training of) a CleanPose model.")
    p.add_argument("--config", required=True, help="training config YAML (config/train/*.yaml)")
    p.add_argument("--out", help="output folder (default: runs/<config name>)")
    p.add_argument("--resume", help="checkpoint to continue from, or 'auto': <out>/checkpoint.pt if present")
    p.add_argument("--iterations", type=int, help="total iterations to reach (overrides the config)")
    p.add_argument("--seed", type=int, help="overrides the config's seed")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the config's device")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override any config value, repeatable; the value is YAML, e.g. "
                        "model_overrides.causal.enabled=false or sources.0.batch_size=8")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (TensorBoard logs stay)")
    p.set_defaults(func=_train)

    t = subparsers.add_parser("teacher", help="pre-train (or import) a teacher encoder",
                              description="Pre-train a PointBERT / PointNet++ SSG teacher by category "
                                          "classification on synthetic object point clouds, or convert an "
                                          "official ULIP-2 checkpoint.")
    t.add_argument("--arch", required=True, choices=["pointbert", "pointnet2_ssg"])
    t.add_argument("--out", required=True, help="teacher file to write (.pt)")
    t.add_argument("--data", help="dataset root in the DPDN layout (obj_models/, */train/...)")
    t.add_argument("--config", help="TeacherTrainConfig YAML (encoder size, iterations, ...)")
    t.add_argument("--iterations", type=int, help="overrides the config")
    t.add_argument("--seed", type=int, help="overrides the config")
    t.add_argument("--ulip2", help="official ULIP-2 checkpoint to convert instead of training")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_teacher)

    q = subparsers.add_parser("queue-init", help="build the initial confounder queue",
                              description="Teacher (PointNet++ SSG) features of training instances' raw "
                                          "points, N_q per category, saved as one tensor file.")
    q.add_argument("--out", required=True, help="queue file to write (.pt)")
    q.add_argument("--teacher", help="teacher file from `cleanpose teacher` (omit with --random)")
    q.add_argument("--data", help="dataset root in the DPDN layout, read with the NOCS reader's defaults")
    q.add_argument("--source", default="real", choices=["camera", "real", "synthetic"],
                   help="layout of --data for the NOCS reader (ours: synthetic)")
    q.add_argument("--config", help="training config YAML: read its data sources instead of --data")
    q.add_argument("--n-q", type=int, default=80, help="entries per category (official: 80; HouseCat6D 100)")
    q.add_argument("--cat-num", type=int, default=6, help="number of categories (NOCS 6, HouseCat6D 10)")
    q.add_argument("--dim", type=int, default=256, help="entry width for --random (official: 256)")
    q.add_argument("--random", action="store_true", help="N(0,1) entries instead of teacher features")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--device", default="cpu")
    q.set_defaults(func=_queue_init)

    s = subparsers.add_parser(
        "train-seg", help="train the Mask R-CNN segmenter on NOCS-format data",
        description="Train (from scratch), fine-tune (--init) or continue training (--resume) the Mask R-CNN "
                    "instance segmenter on data in the "
                    "DPDN/NOCS layout: synthetic data from `cleanpose synth`, or REAL275 / CAMERA25 "
                    "(--data data/real, data/camera). Writes OUT (weights), OUT.train.pt (checkpoint) and "
                    "OUT.log.json (config and losses).")
    s.add_argument("--data", nargs="+", help="dataset folder(s) holding <split>_list.txt; several (of one "
                   "camera, e.g. one per sensor domain): their frames together")
    s.add_argument("--split", help="list to train on (default: train)")
    s.add_argument("--out", help="weights file to write, e.g. models/segmenter_maskrcnn_mobilenet_v3.pt")
    s.add_argument(
        "--config",
        help="SegTrainConfig YAML with any of the options below and more (augmentation, "
        "schedule); flags override it",
    )
    s.add_argument("--iterations", type=int, help="optimizer steps to reach (default 3000)")
    s.add_argument("--batch-size", type=int, help="images per step (default 4)")
    s.add_argument(
        "--seed", type=int, help="seed for initialisation, data order and augmentation (default 0)"
    )
    s.add_argument("--backbone", choices=["mobilenet_v3", "resnet50"], help="default mobilenet_v3")
    s.add_argument("--optimizer", choices=["adamw", "sgd"], help="default adamw")
    s.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    s.add_argument("--min-size", type=int, help="input shorter side in pixels (default 480)")
    s.add_argument("--max-size", type=int, help="input longer-side cap in pixels (default 640)")
    s.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 250)")
    s.add_argument("--device", help="auto | cpu | cuda (default auto)")
    s.add_argument("--resume", action="store_true", help="continue from OUT.train.pt")
    s.add_argument(
        "--init",
        help="fine-tune: start from this weights file of the same architecture (e.g. the "
        "shipped segmenter) with a fresh schedule",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_train_seg)

    c = subparsers.add_parser(
        "train-classifier",
        help="train the point-cloud category classifier that re-scores detections",
        description="Train the PointNet category classifier (models/point_classifier.py) on the ground-truth "
        "instances of NOCS-format data (synthetic, or --source camera / real for CAMERA25 / REAL275). "
        "The Estimator fuses its probabilities with Mask R-CNN's scores. Prints the metrics as JSON.",
    )
    c.add_argument("--data", required=True, nargs="+",
                   help="dataset root(s) (as for `cleanpose train`); several: their instances together")
    c.add_argument("--out", required=True, help="file to write, e.g. models/point_classifier.pt")
    c.add_argument("--config", help="PointClassifierConfig YAML; flags override it")
    c.add_argument(
        "--source", choices=["synthetic", "camera", "real"], help="layout of --data (default synthetic)"
    )
    c.add_argument("--split", help="default train")
    c.add_argument("--iterations", type=int, help="default 2000")
    c.add_argument("--batch-size", type=int, help="default 64")
    c.add_argument("--seed", type=int, help="default 0")
    c.add_argument("--device", help="auto | cpu | cuda (default auto)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_train_classifier)


def _fail(msg: str, code: int) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def _train(args: argparse.Namespace) -> int:
    from ..io import WeightsError  # also CheckpointError: a bad resume checkpoint, queue or teacher file
    from .config import TrainConfig
    from .engine import NonFiniteLossError
    from .trainer import train

    try:
        cfg = load_yaml(TrainConfig, args.config)
        flags = ("iterations", "seed", "device")
        overrides = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
        cfg = from_dict(TrainConfig, apply_overrides({**to_dict(cfg), **overrides}, args.set))
        out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
        result = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except NonFiniteLossError as exc:
        return _fail(str(exc), 1)
    except (ConfigError, WeightsError, FileNotFoundError) as exc:
        return _fail(str(exc), 2)
    if result.losses:
        terms = ", ".join(f"{k}={v:.4f}" for k, v in result.losses.items())
        print(f"trained to iteration {result.step} in {result.seconds:.0f} s; last losses: {terms}")
    print(f"outputs in {result.out_dir}")
    return 0


def _teacher(args: argparse.Namespace) -> int:
    from .teacher import TeacherTrainConfig, convert_ulip2, train_teacher

    try:
        if args.ulip2:
            path = convert_ulip2(args.arch, args.ulip2, args.out)
            print(f"converted {args.ulip2} -> {path}")
            return 0
        if not args.data:
            return _fail("teacher: --data DIR is required unless --ulip2 CKPT is given", 2)
        cfg = TeacherTrainConfig(arch=args.arch)
        if args.config:
            cfg = load_yaml(TeacherTrainConfig, args.config)
        if cfg.arch != args.arch:
            return _fail(f"--arch {args.arch} disagrees with {args.config} (arch: {cfg.arch})", 2)
        overrides = {k: getattr(args, k) for k in ("iterations", "seed") if getattr(args, k) is not None}
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        metrics = train_teacher(cfg, args.data, args.out, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        return _fail(str(exc), 2)
    print(json.dumps({"out": args.out, **metrics}, indent=1))
    return 0


def _queue_init(args: argparse.Namespace) -> int:
    from .queue_init import extract_queue, random_queue, save_queue

    try:
        if args.random:
            queue = random_queue(args.cat_num, args.n_q, args.dim, args.seed)
            save_queue(queue, args.out, f"random N(0,1), seed {args.seed}")
            print(f"wrote {tuple(queue.shape)} random queue to {args.out}")
            return 0
        if not args.teacher:
            return _fail("queue-init: --teacher FILE is required unless --random is given", 2)
        from torch.utils.data import ConcatDataset

        from .components import build_dataset, queue_sources
        from .teacher import load_teacher

        teacher, meta = load_teacher(args.teacher, args.device)
        datasets = [build_dataset(s) for s in queue_sources(args.config, args.data, args.source)]
        dataset = datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)
        queue = extract_queue(teacher, dataset, args.cat_num, args.n_q, batch_size=args.batch_size,
                              seed=args.seed, device=args.device, progress=True)
        save_queue(queue, args.out, f"{meta['arch']} teacher {args.teacher} ({meta.get('source', '')}), "
                                    f"seed {args.seed}")
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        return _fail(str(exc), 2)
    print(f"wrote {tuple(queue.shape)} queue to {args.out}")
    return 0


def _train_seg(args: argparse.Namespace) -> int:
    from ..io import WeightsError  # CheckpointError is one too

    from .maskrcnn import SegTrainConfig, train_segmenter

    try:
        options = read_yaml_mapping(args.config) if args.config else {}
        options.update({k: getattr(args, k) for k in _SEG_OVERRIDES if getattr(args, k) is not None})
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
    from ..models.point_classifier import PointClassifierConfig
    from .point_classifier import train_point_classifier

    try:
        options = read_yaml_mapping(args.config) if args.config else {}
        options.update(
            {
                k: getattr(args, k)
                for k in ("source", "split", "iterations", "batch_size", "seed", "device")
                if getattr(args, k) is not None
            }
        )
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
