"""The initial confounder queue: teacher features of training instances, N_q per category.

Official procedure ([CP queue_extraction.py], architecture-facts §2.6): run the frozen ULIP-2 PointNet++ SSG
in **eval** mode over the training loaders' raw `pts` (1024 points in the camera frame, metres, *not* centred
and *not* augmented) and keep the 256-d feature of each instance under its category until every category has
N_q = 80 entries (100 inferred for HouseCat6D). We do the same with our teacher file (`cleanpose teacher`),
walking a seeded permutation of the training samples, and save one tensor instead of a pickled list of lists.

With per-iteration FIFO pushes the initial entries are flushed within a few dozen iterations (40 pushes per
step over 6 categories), and they live in a different feature space from the later front-door outputs; the
option `random_queue` exists for ablations of exactly that.

File format (`torch.save`, ``weights_only=True``): ``{"format": io.QUEUE_FORMAT ("cleanpose-queue-1"),
"queue": (cat_num, N_q, C) float32, "source": str}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..io import QUEUE_FORMAT, WeightsError, read_artefact, save_artefact
from .loader import SeededItems, TrainDataset

__all__ = ["extract_queue", "random_queue", "save_queue", "load_queue", "load_queue_into", "initialise_queue"]


@torch.no_grad()
def extract_queue(teacher: nn.Module, dataset: TrainDataset, cat_num: int, n_q: int, *, batch_size: int = 32,
                  seed: int = 0, device: str | torch.device = "cpu", max_passes: int = 10,
                  progress: bool = False) -> torch.Tensor:
    """Teacher features of training samples, the first `n_q` of each category in a seeded order.

    Like the official extraction, which keeps iterating the training loaders until every category is full,
    this makes up to `max_passes` passes over the dataset; readers with `reset(epoch, seed)` draw new images
    and a new random instance per image at every pass.

    Args:
        teacher: frozen encoder, (B, N, 3) metres -> (B, C); run in eval mode (BatchNorm running statistics,
            no dropout), as the official extraction does.
        dataset: training reader; items need `pts` (N, 3) camera-frame metres (used as they are: not centred,
            not augmented) and `category_label` (0-based).
        cat_num: number of categories; n_q: entries per category (official 80).

    Returns:
        (cat_num, n_q, C) float32 on CPU.

    Raises:
        ValueError: a category is still short of `n_q` samples after `max_passes` passes; names them.
    """
    from tqdm import tqdm

    teacher.eval().to(device)
    found: list[list[torch.Tensor]] = [[] for _ in range(cat_num)]
    bar = tqdm(total=cat_num * n_q, disable=not progress, desc="queue-init", dynamic_ncols=True)
    with torch.random.fork_rng(devices=[]):  # the teacher's own draws (PN++ SSG's random FPS start), seeded
        torch.manual_seed(seed)
        reset = getattr(dataset, "reset", None)
        passes = max_passes if callable(reset) else 1  # without `reset` another pass only repeats samples
        for epoch in range(passes):
            if all(len(f) >= n_q for f in found):
                break
            if callable(reset):
                reset(epoch, seed)
            _one_pass(teacher, SeededItems(dataset, seed, epoch), found, n_q, batch_size,
                      np.random.default_rng([seed, epoch]).permutation(len(dataset)), device, bar)
    bar.close()
    short = {c: len(f) for c, f in enumerate(found) if len(f) < n_q}
    if short:
        raise ValueError(f"too few training samples for a full queue after {passes} pass(es): categories "
                         f"{short} (index: count) have fewer than {n_q}")
    return torch.stack([torch.stack(f) for f in found])


def _one_pass(teacher: nn.Module, items: SeededItems, found: list[list[torch.Tensor]], n_q: int,
              batch_size: int, order: np.ndarray, device: str | torch.device, bar: Any) -> None:
    """Append teacher features of `items` (in `order`) to their categories in `found` until each has n_q."""
    for start in range(0, len(order), batch_size):
        if all(len(f) >= n_q for f in found):
            return
        samples = [items[int(i)] for i in order[start : start + batch_size]]
        labels = [int(torch.as_tensor(s["category_label"]).reshape(-1)[0]) for s in samples]
        wanted = [j for j, c in enumerate(labels) if len(found[c]) < n_q]  # skip the teacher for full ones
        if not wanted:
            continue
        pts = torch.stack([torch.as_tensor(samples[j]["pts"], dtype=torch.float32) for j in wanted])
        feats = teacher(pts.to(device)).float().cpu()  # (b, C) from (b, N, 3) camera frame, metres
        for j, f in zip(wanted, feats):
            if len(found[labels[j]]) < n_q:
                found[labels[j]].append(f)
                bar.update(1)


def random_queue(cat_num: int, n_q: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(cat_num, n_q, dim) N(0, 1) entries, for the random-initialisation ablation."""
    return torch.randn(cat_num, n_q, dim, generator=torch.Generator().manual_seed(seed))


def save_queue(queue: torch.Tensor, path: str | Path, source: str) -> Path:
    if queue.dim() != 3:
        raise ValueError(f"queue must be (cat_num, N_q, C), got shape {tuple(queue.shape)}")
    return save_artefact(path, QUEUE_FORMAT, queue=queue.float().cpu().contiguous(), source=source)


def load_queue(path: str | Path, *, with_source: bool = False) -> torch.Tensor | tuple[torch.Tensor, str]:
    """(cat_num, N_q, C) tensor from a queue file.

    Raises:
        WeightsError: the file is unreadable, not a queue file, or holds no (cat_num, N_q, C) tensor
            (WeightsNotFoundError, also a FileNotFoundError, when it is missing).
    """
    blob = read_artefact(path, QUEUE_FORMAT)
    queue = blob.get("queue")
    if not isinstance(queue, torch.Tensor) or queue.dim() != 3:
        found = tuple(queue.shape) if isinstance(queue, torch.Tensor) else type(queue).__name__
        raise WeightsError(f"{path}: 'queue' must be a (cat_num, N_q, C) tensor, found {found}")
    return (queue, str(blob.get("source", ""))) if with_source else queue


def load_queue_into(model: nn.Module, path: str | Path) -> None:
    """Fill `model.queue` (a `ConfounderQueue`) from a queue file; the (cat_num, N_q, C) shapes must match.

    Raises:
        ConfigError: the model has no confounder queue (a config that sets queue_init without one).
        WeightsError: the file is bad (see `load_queue`) or its queue does not fit the model's.
    """
    queue = getattr(model, "queue", None)
    if queue is None or not callable(getattr(queue, "fill_", None)):
        raise ConfigError(f"queue_init {path}: the model has no confounder queue (causal module disabled?)")
    entries = load_queue(path)
    try:
        queue.fill_(entries)
    except ValueError as exc:
        raise WeightsError(f"queue_init {path}: {exc}") from exc


def initialise_queue(model: nn.Module, path: str | Path | None) -> None:
    """Set up the confounder queue of a new training run as its `causal.queue.init` says (official: teacher).

    - `init: teacher`: fill it from the `queue_init` file, which must hold teacher features (`cleanpose
    queue-init
      --teacher`); training the causal module without it would silently start from random entries;
    - `init: random` (paper Tab. 7a "Random"): keep the model's own seeded N(0, random_std^2) entries; a file
    is
      then a contradiction;
    - no queue (causal module off): `queue_init` must be None. A queue without a config (test stand-ins) is
    filled
      from the file when one is given.

    Raises:
        ConfigError: the config and the file disagree (the message says how to fix it).
        WeightsError: the file is bad or does not fit the model's queue.
    """
    queue = getattr(model, "queue", None)
    init = getattr(getattr(queue, "cfg", None), "init", None)
    if init == "teacher" and path is None:
        raise ConfigError(
            "the causal module's queue starts from teacher features (causal.queue.init: teacher) but "
            "the training config sets no queue_init: write the file with `cleanpose queue-init "
            "--teacher TEACHER.pt ...` and set queue_init to it, or set model_overrides {causal: {queue: "
            "{init: random}}} for the random-initialisation ablation"
        )
    if init == "random" and path is not None:
        raise ConfigError(f"queue_init {path} is set but causal.queue.init is random (the model's own seeded "
                          "entries): remove queue_init, or set causal.queue.init: teacher to use the file")
    if path is None:
        return
    if init == "teacher":
        source = load_queue(path, with_source=True)[1]
        if source.startswith("random"):
            raise ConfigError(
                f"queue_init {path} holds random entries ({source}) but causal.queue.init is teacher: "
                "write teacher features with `cleanpose queue-init --teacher`, or set "
                "causal.queue.init: random and remove queue_init"
            )
    load_queue_into(model, path)
