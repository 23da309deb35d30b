"""`cleanpose train`, `cleanpose teacher` and `cleanpose queue-init`: argument parsing only.

The work is done by `trainer.train`, `teacher.train_teacher` / `teacher.convert_ulip2` and
`queue_init.extract_queue`; this module maps flags onto their configs (STYLE.md §5). Exit codes: 0 success,
1 training diverged (non-finite loss), 2 bad configuration, data or checkpoint.

Multi-process: ``torchrun --nproc_per_node 2 -m cleanpose_core.cli train --config ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..config import ConfigError, from_dict, load_yaml, to_dict

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a pose model from a training config",
                              description="Train (or resume training of) a CleanPose model.")
    p.add_argument("--config", required=True, help="training config YAML (config/train/*.yaml)")
    p.add_argument("--out", help="output folder (default: runs/<config name>)")
    p.add_argument("--resume", help="checkpoint to continue from, or 'auto': <out>/checkpoint.pt if present")
    p.add_argument("--iterations", type=int, help="total iterations to reach (overrides the config)")
    p.add_argument("--seed", type=int, help="overrides the config's seed")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="overrides the config's device")
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
        cfg = from_dict(TrainConfig, {**to_dict(cfg), **overrides})
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

