"""The one small loop that trains a point-cloud classifier: teacher pre-training and the point classifier.

Both are "classify object point clouds into the NOCS categories": cross-entropy, AdamW, a cosine decay of the
learning rate to 1 % over the run, a loud stop on a non-finite loss. What differs is the network and how a
batch is drawn, which the caller passes in (`teacher.train_teacher`,
`point_classifier.train_point_classifier`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["train_classification"]

Batch = tuple[torch.Tensor, torch.Tensor]  # points (B, N, 3) float32 metres, labels (B,) 0-based categories


def train_classification(model: nn.Module, draw: Callable[[int], Batch], *, iterations: int, lr: float,
                         weight_decay: float, device: torch.device, name: str,
                         progress: bool = True) -> dict[str, float]:
    """Train `model` (points -> logits, on `device`) in place for `iterations` steps.

    Args:
        draw: iteration -> one batch on the CPU; called once per step, in order, so its randomness decides the
        run.
        name: for the progress bar and the error message.
    Returns:
        {"loss": exponential moving average (0.95) of the loss, "accuracy": the same of the batch accuracy,
        %}.
    Raises:
        FloatingPointError: a non-finite loss (naming `name` and the iteration).
    """
    from tqdm import tqdm

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations, eta_min=lr * 0.01)
    loss_ema = acc_ema = None
    bar = tqdm(range(iterations), disable=not progress, desc=name, dynamic_ncols=True)
    for it in bar:
        pts, labels = draw(it)
        pts, labels = pts.to(device), labels.to(device)
        logits = model(pts)
        loss = nn.functional.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: non-finite loss {loss.item()} at iteration {it}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc = float((logits.argmax(1) == labels).float().mean()) * 100
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        acc_ema = acc if acc_ema is None else 0.95 * acc_ema + 0.05 * acc
        bar.set_postfix(loss=f"{loss_ema:.3f}", acc=f"{acc_ema:.1f}", refresh=False)
    return {"loss": float(loss_ema), "accuracy": float(acc_ema)}
