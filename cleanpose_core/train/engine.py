"""One training iteration and the plain loop around it (STYLE.md §12-13; torchvision references/detection).

One iteration, as the official `step_camera_real` does it ([CP utils/solver.py]):
1. take the next batch of every source (official: 30 CAMERA + 10 REAL) and concatenate them into one batch;
2. one forward pass over the whole batch (so BatchNorm sees all 40 samples, and every sample pushes to the
   queue);
3. the loss of each source's slice separately, combined as Σ_s n_s·L_s / Σ_s n_s, i.e. (30·L_a + 10·L_b)/40;
4. stop loudly, naming every term, if the total is not finite;
5. backward, `optimizer.step()`, then `scheduler.step()` (CyclicLR is per iteration);
6. the confounder-queue FIFO update: one entry per sample, in batch order. Under torchrun the entries of all
   ranks are gathered and pushed in rank order, so the queue stays identical on every rank (the official code
   is single-process and pushes inside the forward).

The model contract used here:
- `model(batch)` returns a dict of named outputs, batch-first tensors;
- `loss_fn(outputs, batch)` returns the weighted loss terms as scalar tensors, the total under `loss_all`;
- a model with a confounder queue has it at `model.queue` (`push(features (B, C), labels (B,), sync=False)`,
  `models/confounder_queue.py`) and returns the per-sample entries to push under `outputs[QUEUE_OUTPUT_KEY]`
  (B, C); the engine, not the forward pass, pushes them. A queue with the per-epoch policy (paper text)
  commits what it staged when the loop calls `end_of_epoch` (`ConfounderQueue.end_epoch`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .distributed import all_gather_tensor

__all__ = [
    "NonFiniteLossError",
    "QUEUE_OUTPUT_KEY",
    "TOTAL_KEY",
    "concat_batches",
    "slice_batch",
    "mixed_source_loss",
    "train_one_step",
    "end_of_epoch",
    "StepResult",
]

TOTAL_KEY = "loss_all"  # the official name of the total loss
QUEUE_OUTPUT_KEY = "queue_feat"  # (B, C) entries the FIFO update pushes, one per sample
LABEL_KEY = "category_label"  # (B,) 0-based category of each sample

LossFn = Callable[[dict[str, Any], dict[str, Any]], dict[str, torch.Tensor]]


class NonFiniteLossError(FloatingPointError):
    """The total loss became NaN or infinite; the message lists every loss term of that iteration."""


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def concat_batches(batches: list[dict[str, Any]], device: torch.device) -> tuple[dict[str, Any], list[int]]:
    """Concatenate per-source batches key by key along dim 0 and move them to `device`.

    Returns the joint batch and each source's size, in order. Every source must provide the same keys.
    """
    keys = set(batches[0])
    for i, b in enumerate(batches[1:], 1):
        if set(b) != keys:
            raise KeyError(f"source {i} yields keys {sorted(b)}, source 0 yields {sorted(keys)}")
    joint: dict[str, Any] = {}
    for k in batches[0]:
        values = [b[k] for b in batches]
        if isinstance(values[0], torch.Tensor):
            joint[k] = torch.cat(values, dim=0).to(device, non_blocking=True)
        else:  # e.g. lists of sample ids
            joint[k] = [x for v in values for x in v]
    sizes = [len(next(iter(b.values()))) for b in batches]
    return joint, sizes


def slice_batch(data: dict[str, Any], start: int, stop: int, batch: int) -> dict[str, Any]:
    """Rows start:stop of every batch-first entry (tensors or lists whose length is `batch`); others as is."""
    out = {}
    for k, v in data.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == batch:
            out[k] = v[start:stop]
        elif isinstance(v, list) and len(v) == batch:
            out[k] = v[start:stop]
        else:
            out[k] = v
    return out


def mixed_source_loss(loss_fn: LossFn, outputs: dict[str, Any], batch: dict[str, Any],
                      sizes: list[int]) -> dict[str, torch.Tensor]:
    """Loss terms of every source's slice, combined as Σ n_s·L_s / Σ n_s ((30·L_a + 10·L_b)/40 officially).

    With one source this is just `loss_fn(outputs, batch)`.
    """
    if len(sizes) == 1:
        return loss_fn(outputs, batch)
    total = sum(sizes)
    combined: dict[str, torch.Tensor] = {}
    start = 0
    for n in sizes:
        terms = loss_fn(slice_batch(outputs, start, start + n, total),
                        slice_batch(batch, start, start + n, total))
        for k, v in terms.items():
            combined[k] = combined.get(k, 0.0) + v * (n / total)
        start += n
    return combined


def check_finite(terms: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """Scalar values of `terms`; raises NonFiniteLossError listing every term if the total is not finite."""
    values = {k: float(v.detach()) for k, v in terms.items()}
    if not math.isfinite(values[TOTAL_KEY]):
        listing = ", ".join(f"{k}={v:.6g}" for k, v in values.items())
        raise NonFiniteLossError(f"non-finite loss at iteration {step}: {listing}")
    return values


@dataclass
class StepResult:
    losses: dict[str, float]  # weighted terms of this process's batch, including the total
    lr: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


def train_one_step(
    model: nn.Module,
    batches: list[dict[str, Any]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    step: int,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
) -> StepResult:
    """One iteration over one batch per source (see the module docstring for the order of events).

    Args:
        batches: one collated batch per source, in config order; each value batch-first.
        step: the iteration being run (0-based), for error messages.
        scaler: a GradScaler when training with float16 autocast; None for full precision.
    """
    t0 = time.perf_counter()
    batch, sizes = concat_batches(batches, device)
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler is not None):
        outputs = model(batch)
        terms = mixed_source_loss(loss_fn, outputs, batch, sizes)
    losses = check_finite(terms, step)

    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(terms[TOTAL_KEY]).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        terms[TOTAL_KEY].backward()
        optimizer.step()
    lr = optimizer.param_groups[0]["lr"]  # the lr this step used
    scheduler.step()

    queue = getattr(_unwrap(model), "queue", None)
    if queue is not None and QUEUE_OUTPUT_KEY in outputs:
        with torch.no_grad():
            entries = all_gather_tensor(outputs[QUEUE_OUTPUT_KEY].detach().float())  # (world·B, C)
            labels = all_gather_tensor(batch[LABEL_KEY].reshape(-1).to(device))  # (world·B,)
            queue.push(entries, labels, sync=False)  # already gathered, in rank order
    return StepResult(losses=losses, lr=lr, seconds=time.perf_counter() - t0)


def end_of_epoch(model: nn.Module) -> bool:
    """Tell the model an epoch ended: a confounder queue with the per-epoch policy moves the entries it staged
    during the epoch into the queue. Every rank calls it after the same step (its staged entries are the
    gathered ones), so the queues stay identical. Returns True if the queue changed."""
    end = getattr(getattr(_unwrap(model), "queue", None), "end_epoch", None)
    return bool(end()) if callable(end) else False
