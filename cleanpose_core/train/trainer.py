"""Wiring of a training run: config → data → model → optimiser → resume → loop → checkpoints.

This is the `train.py` of torchvision's references, as a function the CLI calls (`cleanpose train`). The loop
itself is below in `train`, top to bottom: one iteration (`engine.train_one_step`), logging on rank 0
(progress bar with the loss terms and ETA, TensorBoard scalars), and a checkpoint every `checkpoint_every`
iterations and at the end.

Output folder:
- ``config.yaml``: the resolved training config and model config (STYLE.md §9);
- ``checkpoint.pt``: the latest full training checkpoint (`io/checkpoint.py`), what `--resume auto` reads;
- ``model_final.pt``: the trained weights for inference (model state incl. the confounder queue, the model
  config, the step), without optimiser or RNG state;
- ``tb/``: TensorBoard event files.

Epochs: the loop counts iterations; an epoch ends when the first data source has returned its epoch's last
batch (official NOCS: 120k CAMERA images / 30 = 4,000 iterations, as many as REAL's). Then
`engine.end_of_epoch` runs, before that step's checkpoint: a confounder queue with the per-epoch policy
commits its staged entries.

Confounder queue at the start (`queue_init.initialise_queue`): `causal.queue.init: teacher` needs the training
config's `queue_init` file (`cleanpose queue-init`); `init: random` keeps the model's seeded random entries.
A fine-tuning run (`init_weights`) takes the weights and the queue from a trained model file instead.

Randomness: every global generator is seeded with `seed` before the model is built (identical initial weights
on all ranks), then with `seed + rank` for the training itself (different augmentations per rank), as
torchvision's references do. A checkpoint stores every rank's generator states, so a resumed run draws exactly
what the uninterrupted one would have.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn

from ..config import ConfigError, to_dict
from ..device import resolve_device
from ..io import (CHECKPOINT_FORMAT, FORMATS, MODEL_FORMAT, CheckpointError, WeightsError,
                  capture_rng_state, describe_contents, load_checkpoint, load_trainable_state_dict,
                  read_weights_file, restore_rng_state, save_artefact, save_checkpoint, trainable_state_dict)
from .components import Components, default_components
from .config import TrainConfig
from .distributed import DistInfo, cleanup, init_distributed, is_main_process, reduce_mean
from .engine import TOTAL_KEY, end_of_epoch, train_one_step
from .loader import SourceStream
from .mixed_precision import bf16_autocast, use_bf16
from .schedules import build_scheduler

__all__ = ["Components", "TrainResult", "train", "seed_everything", "CHECKPOINT_NAME", "FINAL_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
FINAL_NAME = "model_final.pt"

@dataclass
class TrainResult:
    step: int  # iterations done
    losses: dict[str, float]  # last logged (rank-averaged) loss terms
    seconds: float  # wall time of this invocation's loop
    out_dir: Path


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def _gather_rng(info: DistInfo, generators: dict[str, torch.Generator]) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (collective: all ranks must call it)."""
    state = capture_rng_state(generators)
    if not info.distributed:
        return [state]
    states: list[Any] = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states


def _write_resolved_config(out_dir: Path, cfg: TrainConfig, model_config: dict[str, Any]) -> None:
    text = yaml.safe_dump({"train": to_dict(cfg), "model": model_config}, sort_keys=False)
    tmp = out_dir / ".config.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, out_dir / "config.yaml")


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: str | Path | None = None,
    build_components: Callable[[TrainConfig, torch.device], Components] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Run (or continue) training as `cfg` says, writing into `out_dir`.

    Args:
        cfg: the training config; `cfg.iterations` is the total to reach, counting resumed iterations.
        out_dir: output folder (created).
        resume: a checkpoint to continue from, 'auto' for `out_dir/checkpoint.pt` when it exists, or None.
        build_components: builds model, loss and data readers; defaults to the CleanPose model and the
            NOCS / HouseCat6D readers (`components.default_components`).
        progress: show the tqdm bar on rank 0.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (every term is in the message).
        CheckpointError: the resume checkpoint is missing, corrupt, or from a different model config.
    """
    out_dir = Path(out_dir)
    try:
        device = resolve_device(cfg.device)
    except ValueError as exc:
        raise ConfigError(f"device: {exc}") from exc
    if cfg.deterministic:
        # cuBLAS needs this before its first use to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank if info.distributed else (device.index or 0))
    main = info.rank == 0
    ckpt_path = _resolve_resume(resume, out_dir)
    if ckpt_path is not None and not ckpt_path.is_file():  # fail before minutes of model/data set-up
        raise CheckpointError(f"checkpoint not found: {ckpt_path}")

    if build_components is None:
        build_components = default_components

    try:
        seed_everything(cfg.seed)  # identical initial weights on every rank
        comp = build_components(cfg, device)
        model = comp.model.to(device)
        in_bf16 = bf16_autocast(model, cfg.bf16_modules if use_bf16(cfg.bf16, device) else [])
        if main and in_bf16:
            print(f"[train] bf16 autocast: {', '.join(in_bf16)}", flush=True)

        streams = []
        for source in cfg.sources:
            dataset = comp.build_dataset(source)
            # Readers with `reset(epoch, seed)` draw each epoch's random order themselves (official NOCS).
            draws_own_order = callable(getattr(dataset, "reset", None))
            streams.append(SourceStream(source.name, dataset, source.batch_size, workers=source.workers,
                                        seed=cfg.seed, dist=info, shuffle=not draws_own_order,
                                        pin_memory=device.type == "cuda"))
        params = [p for p in model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if cfg.optimizer.name == "adamw" else torch.optim.Adam
        optimizer = opt_cls(params, lr=cfg.schedule.base_lr, betas=cfg.optimizer.betas, eps=cfg.optimizer.eps,
                            weight_decay=cfg.optimizer.weight_decay)
        scheduler = build_scheduler(optimizer, cfg.schedule)
        scaler = torch.amp.GradScaler("cuda") if cfg.amp else None
        if cfg.amp and device.type != "cuda":
            raise ConfigError("amp: float16 mixed precision needs CUDA; set amp: false on CPU")

        # Resume --------------------------------------------------------------------------------------------
        step = 0
        if ckpt_path is not None:
            ckpt = load_checkpoint(ckpt_path, map_location="cpu")  # RNG states must stay CPU tensors
            if ckpt["config"]["model"] != comp.model_config:
                raise CheckpointError(f"{ckpt_path} was trained with a different model config: "
                                      f"{_dict_diff(ckpt['config']['model'], comp.model_config)}")
            load_trainable_state_dict(model, ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if scaler is not None and ckpt["scaler"] is not None:
                scaler.load_state_dict(ckpt["scaler"])
            names = [s.name for s in streams]
            if sorted(ckpt["data"]) != sorted(names):
                raise CheckpointError(f"{ckpt_path} has data sources {sorted(ckpt['data'])}, "
                                      f"the config has {names}")
            for s in streams:
                s.load_state_dict(ckpt["data"][s.name])
            rng = ckpt["rng"]
            if len(rng) != info.world_size:
                warnings.warn(f"checkpoint from {len(rng)} process(es), resuming with {info.world_size}: "
                              "data order is kept but random draws will differ from an uninterrupted run")
            restore_rng_state(rng[info.rank % len(rng)], comp.generators)
            step = int(ckpt["step"])
            del ckpt
        else:
            if cfg.init_weights:
                _start_from_weights(model, cfg.init_weights, comp.model_config)
            else:
                from .queue_init import initialise_queue

                initialise_queue(model, cfg.queue_init)
            seed_everything(cfg.seed + info.rank)
            for g in comp.generators.values():  # other ranks: their own augmentation / sampling streams
                if info.rank > 0:
                    g.manual_seed(g.initial_seed() + 1_000_003 * info.rank)

        if info.distributed:
            model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                # The queue is kept identical by gathering the pushes (engine.py); BatchNorm running
                # statistics stay per rank like in torchvision's references, and rank 0's are saved.
                broadcast_buffers=False,
                find_unused_parameters=cfg.ddp_find_unused_parameters,
            )

        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            _write_resolved_config(out_dir, cfg, comp.model_config)
        return _loop(cfg, out_dir, info, device, model, comp, streams, optimizer, scheduler, scaler, step,
                     progress and main)
    finally:
        cleanup()


def _loop(cfg, out_dir, info, device, model, comp, streams, optimizer, scheduler, scaler, step, progress):
    """The training loop proper (see the module docstring)."""
    main = info.rank == 0
    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out_dir / "tb"), purge_step=step)
    from tqdm import tqdm

    bar = tqdm(total=cfg.iterations, initial=step, disable=not progress, dynamic_ncols=True, unit="it",
               desc="train")
    model.train()
    logged: dict[str, float] = {}
    window: dict[str, float] = {}
    window_n = 0
    t_start, first_step = time.perf_counter(), step
    try:
        while step < cfg.iterations:
            batches = [s.next_batch() for s in streams]
            result = train_one_step(model, batches, comp.loss_fn, optimizer, scheduler, step=step,
                                    device=device, scaler=scaler)
            step += 1
            if streams[0].at_epoch_end:
                end_of_epoch(model)
            for k, v in result.losses.items():
                window[k] = window.get(k, 0.0) + v
            window_n += 1
            bar.update(1)

            if step % cfg.log_every == 0 or step == cfg.iterations:
                means = reduce_mean({k: v / window_n for k, v in window.items()}, device)
                window, window_n = {}, 0
                logged = means
                if writer is not None:
                    for k, v in means.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("lr", result.lr, step)
                    writer.add_scalar("time/step_s", result.seconds, step)
                bar.set_postfix({"loss": f"{means[TOTAL_KEY]:.4f}", "lr": f"{result.lr:.2e}",
                                 **{k.removeprefix("loss_"): f"{v:.3f}" for k, v in means.items()
                                    if k != TOTAL_KEY}}, refresh=False)

            if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
                _save(cfg, out_dir, info, model, comp, streams, optimizer, scheduler, scaler, step)
                # no bar (batch jobs, nohup): one plain line per checkpoint
                if main and not progress and logged:
                    rate = (time.perf_counter() - t_start) / (step - first_step)
                    print(
                        f"[train] step {step}/{cfg.iterations} loss {logged[TOTAL_KEY]:.4f} "
                        f"lr {result.lr:.2e} {rate:.2f} s/it, "
                        f"eta {rate * (cfg.iterations - step) / 60:.0f} min",
                        flush=True,
                    )
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        for s in streams:
            s.close()
    if main:
        # Points per object the model was trained with: the Estimator samples the same number at test time.
        n_points = {int(s.dataset.get("sample_num", 1024)) for s in cfg.sources}
        save_artefact(out_dir / FINAL_NAME, MODEL_FORMAT, model=trainable_state_dict(_bare(model)),
                      model_config=comp.model_config, n_points=max(n_points), step=step, seed=cfg.seed)
    return TrainResult(step=step, losses=logged, seconds=time.perf_counter() - t_start, out_dir=out_dir)


def _bare(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _save(cfg, out_dir, info, model, comp, streams, optimizer, scheduler, scaler, step) -> None:
    rng = _gather_rng(info, comp.generators)  # collective: every rank takes part
    if is_main_process():
        save_checkpoint(
            out_dir / CHECKPOINT_NAME,
            model=trainable_state_dict(_bare(model)),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            scaler=scaler.state_dict() if scaler is not None else None,
            step=step,
            rng=rng,
            data={s.name: s.state_dict() for s in streams},
            config={"train": to_dict(cfg), "model": comp.model_config},
        )


def _resolve_resume(resume: str | Path | None, out_dir: Path) -> Path | None:
    if resume is None:
        return None
    if str(resume) == "auto":
        path = out_dir / CHECKPOINT_NAME
        return path if path.is_file() else None
    return Path(resume)


def _start_from_weights(model: nn.Module, path: str, model_config: dict) -> None:
    """Fine-tuning: load a pose model file's (or training checkpoint's) weights and queue into `model`.

    Raises:
        WeightsError: the file is missing, unreadable, not a pose model, or trained with another model config.
    """
    data = read_weights_file(path, FORMATS[MODEL_FORMAT].what)
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        data = {"model": data.get("model"), "model_config": data.get("config", {}).get("model")}
    if not isinstance(data, dict) or "model" not in data or "model_config" not in data:
        raise WeightsError(f"init_weights {path} is not a CleanPose model file or training checkpoint "
                           f"(found {describe_contents(data)})")
    # The model config's seed drew the initial weights, which the file replaces: it may differ.
    if _without_seed(data["model_config"]) != _without_seed(model_config):
        raise WeightsError(f"init_weights {path} was trained with a different model config: "
                           f"{_dict_diff(data['model_config'], model_config)}")
    try:
        load_trainable_state_dict(model, data["model"])
    except WeightsError as exc:
        raise WeightsError(f"init_weights {path}: {exc}") from exc


def _without_seed(config: Any) -> Any:
    return {k: v for k, v in config.items() if k != "seed"} if isinstance(config, dict) else config


def _dict_diff(a: Any, b: Any, where: str = "") -> str:
    """First differing key path between two nested dicts, for error messages."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{where}{k} present in only one"
            if a[k] != b[k]:
                return _dict_diff(a[k], b[k], f"{where}{k}.")
        return "no difference"
    return f"{where.rstrip('.')}: {a!r} (checkpoint) vs {b!r} (now)"
