"""Training Mask R-CNN from scratch (or fine-tuning it) on NOCS-format data: `cleanpose train-seg`.

Wiring only, in the order of torchvision's `references/detection/train.py`: config -> data -> model ->
optimizer and schedule -> resume -> loop. Differences from that reference, and why:
- iteration-based (not epoch-based), since synthetic splits vary in size and CPU budgets are counted in steps;
- from random initialisation (no ImageNet weights can be downloaded here), hence AdamW by default with a
  linear warm-up and a cosine decay, and gradient clipping: plain SGD at 0.02 diverges in the first few
  hundred steps without pretrained features;
- exact resume: the data order is a per-epoch permutation seeded by (seed, epoch), the augmentation is seeded
  by (seed, epoch, index), and the checkpoint holds model, optimizer, schedule, step, data position and every
  RNG state, so an interrupted run continues bit for bit on CPU. (On CUDA, torchvision's RoIAlign backward
  uses atomic adds and is not bit-exact.)

The network is `models/maskrcnn.py`, the samples `maskrcnn_data.py`, the weight files and the segmenter that
runs them `segmentation/maskrcnn.py`.

Files written for `--out FILE`: `FILE` (the deployable weights,
`segmentation.maskrcnn.save_maskrcnn_weights`), and beside it `FILE.train.pt` (the training checkpoint, every
`checkpoint_every` steps and at the end; `--resume` reads it) and `FILE.log.json` (the resolved config and the
loss history).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from cleanpose_core.config import to_dict
from cleanpose_core.data.nocs import recorded_intrinsics
from cleanpose_core.device import resolve_device
from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.io import (CheckpointError, capture_rng_state, load_checkpoint, restore_rng_state,
                               save_checkpoint)
from cleanpose_core.models.maskrcnn import MASKRCNN_PRESETS, MaskRCNNArch, MaskRCNNInference, build_maskrcnn
from cleanpose_core.segmentation.maskrcnn import load_maskrcnn, save_maskrcnn_weights

from .maskrcnn_data import AugmentConfig, ConcatSegmentationDataset, NocsSegmentationDataset

__all__ = ["SegTrainConfig", "train_paths", "train_segmenter"]

log = logging.getLogger(__name__)


@dataclass
class SegTrainConfig:
    """Everything a `train-seg` run depends on; saved with every checkpoint and in the log."""

    # dataset folder with <split>_list.txt (DPDN/NOCS layout), or several (e.g. one per sensor domain) of one
    # camera: every frame is resized to min_size, so their pixel scales must agree
    data: str | list[str]
    out: str                      # deployable weights file to write
    split: str = "train"
    iterations: int = 3000        # optimizer steps
    batch_size: int = 4           # images per step
    seed: int = 0
    backbone: Literal["mobilenet_v3", "resnet50"] = "mobilenet_v3"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3              # peak learning rate (AdamW); use ~0.01 for SGD
    momentum: float = 0.9         # SGD only
    weight_decay: float = 1e-4
    warmup_iterations: int = 100  # linear warm-up from 1% of lr
    min_lr_ratio: float = 0.05    # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 10.0       # max gradient L2 norm; 0 = off
    min_size: int = 480           # training input: shorter side (px), as at inference
    max_size: int = 640
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    checkpoint_every: int = 250   # steps between training checkpoints
    log_every: int = 10           # steps between loss records
    device: str = "auto"
    half_weights: bool = False    # store the deployable weights as float16 (half the file size)
    # fine-tune: start from this weights file (or train-seg checkpoint) of the same
    init: str | None = None
                                  # architecture instead of random weights; the schedule starts afresh

    def validate(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every", "min_size", "max_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if (
            self.lr <= 0
            or self.warmup_iterations < 0
            or not 0 <= self.min_lr_ratio <= 1
            or self.grad_clip < 0
        ):
            raise ValueError("need lr > 0, warmup_iterations >= 0, min_lr_ratio in [0, 1], grad_clip >= 0")


def train_paths(out: str | Path) -> dict[str, Path]:
    """The files a run writes for weights file `out`."""
    out = Path(out)
    return {"weights": out, "checkpoint": out.with_name(out.name + ".train.pt"),
            "log": out.with_name(out.name + ".log.json")}


def _lr_factor(step: int, cfg: SegTrainConfig) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based): linear warm-up, then cosine decay."""
    if step < cfg.warmup_iterations:
        return 0.01 + 0.99 * step / cfg.warmup_iterations
    span = max(1, cfg.iterations - cfg.warmup_iterations)
    progress = min(1.0, (step - cfg.warmup_iterations) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _batches(n: int, batch_size: int, seed: int, epoch: int, position: int):
    """Endless (epoch, position-after, indices) batches over a per-epoch permutation seeded by (seed,
    epoch)."""
    order = np.random.default_rng((seed, epoch)).permutation(n)
    while True:
        idx = []
        while len(idx) < batch_size:
            if position == n:
                epoch, position = epoch + 1, 0
                order = np.random.default_rng((seed, epoch)).permutation(n)
            take = min(batch_size - len(idx), n - position)
            idx.extend((epoch, int(i)) for i in order[position:position + take])
            position += take
        yield epoch, position, idx


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _common_camera(roots: list[str], split: str) -> Intrinsics:
    """The camera of the training folders (`cleanpose synth` records it; others are REAL275's). Every frame
    is resized to one min_size, so folders of cameras whose pixel scales differ by over 5 % would train the
    network at several scales at once: refused."""
    cameras = [recorded_intrinsics(Path(root), split) for root in roots]
    for root, cam in zip(roots[1:], cameras[1:]):
        ref = cameras[0]
        if (cam.width, cam.height) != (ref.width, ref.height) or abs(cam.fx / ref.fx - 1) > 0.05:
            raise ValueError(f"{root}: camera {cam.width}x{cam.height}, fx {cam.fx:.1f} differs from "
                             f"{roots[0]}'s ({ref.width}x{ref.height}, fx {ref.fx:.1f}); train-seg resizes "
                             "every frame to one size, so train on folders of one camera")
    return cameras[0]


def train_segmenter(cfg: SegTrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train (or continue training) Mask R-CNN; returns {'losses': [(step, total, parts)], 'weights', ...}.

    Raises:
        FileNotFoundError / ValueError: the dataset is missing or malformed (names the file).
        CheckpointError: `resume` without a checkpoint, or one from a different architecture.
    """
    cfg.validate()
    paths = train_paths(cfg.out)
    device = resolve_device(cfg.device)
    arch: MaskRCNNArch = MASKRCNN_PRESETS[cfg.backbone]
    _seed_everything(cfg.seed)
    roots = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    camera = _common_camera(roots, cfg.split)
    parts = [NocsSegmentationDataset(root, cfg.split, cfg.augment, seed=cfg.seed + 1_000_003 * i)
             for i, root in enumerate(roots)]  # offset seeds: image i of two folders draws different jitter
    dataset = parts[0] if len(parts) == 1 else ConcatSegmentationDataset(parts)
    model = build_maskrcnn(arch, MaskRCNNInference(min_size=cfg.min_size, max_size=cfg.max_size)).to(device)
    if cfg.init and not resume:
        start, start_arch, _ = load_maskrcnn(cfg.init)
        if to_dict(start_arch) != to_dict(arch):
            raise ValueError(
                f"--init {cfg.init} is a {start_arch.backbone} Mask R-CNN ({to_dict(start_arch)}), "
                f"this run trains {to_dict(arch)}"
            )
        model.load_state_dict(start.state_dict())
        log.info("fine-tuning from %s", cfg.init)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg))
    step, epoch, position, history = 0, 0, 0, []
    config_record = {"train": to_dict(cfg), "arch": to_dict(arch)}
    if resume:
        ckpt = load_checkpoint(paths["checkpoint"])
        if ckpt["config"].get("arch") != config_record["arch"]:
            raise CheckpointError(
                f"{paths['checkpoint']} was trained with architecture {ckpt['config'].get('arch')}, "
                f"this run asks for {config_record['arch']}"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, epoch, position = int(ckpt["step"]), int(ckpt["data"]["epoch"]), int(ckpt["data"]["position"])
        history = [tuple(h) for h in ckpt["data"].get("history", [])]
        restore_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d", paths["checkpoint"], step)

    def checkpoint() -> None:
        save_checkpoint(paths["checkpoint"], model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=None, step=step, rng=capture_rng_state(),
                        data={"epoch": epoch, "position": position, "history": [list(h) for h in history]},
                        config=config_record)

    model.train()
    stream = _batches(len(dataset), cfg.batch_size, cfg.seed, epoch, position)
    bar = tqdm(total=cfg.iterations, initial=step, desc="train-seg", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    while step < cfg.iterations:
        epoch, position, batch = next(stream)
        images, targets = [], []
        for e, i in batch:
            dataset.set_epoch(e)
            image, target = dataset[i]
            images.append(image.to(device))
            targets.append({k: v.to(device) for k, v in target.items()})
        losses = model(images, targets)
        total = sum(losses.values())
        parts = {k: round(float(v.detach()), 5) for k, v in losses.items()}
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"non-finite loss at step {step}: {parts}; lower --lr or raise warmup_iterations"
            )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        if step % cfg.log_every == 0 or step == 1 or step == cfg.iterations:
            history.append((step, float(total.detach()), parts))
        bar.set_postfix(loss=f"{float(total.detach()):.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        bar.update(1)
        if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
            checkpoint()
    bar.close()
    seconds = time.perf_counter() - t0
    meta = {
        "step": step,
        "seed": cfg.seed,
        "data": ", ".join(roots),
        "split": cfg.split,
        "train_seconds": round(seconds, 1),
        "input_size": [cfg.min_size, cfg.max_size],
        # the training frames' camera: inference resizes other cameras' frames to the same pixel scale
        "train_camera": {"fx": camera.fx, "width": camera.width, "height": camera.height},
        "final_loss": history[-1][1] if history else None,
    }
    save_maskrcnn_weights(paths["weights"], model, arch, meta, half=cfg.half_weights)
    summary = {"config": config_record, "losses": history, "weights": str(paths["weights"]),
               "checkpoint": str(paths["checkpoint"]), "seconds_this_session": round(seconds, 1)}
    paths["log"].write_text(json.dumps(summary, indent=1) + "\n")
    return summary

