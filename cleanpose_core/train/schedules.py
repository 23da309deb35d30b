"""Learning-rate schedules, stepped once per iteration after `optimizer.step()`.

The official recipe ([CP config/REAL/camera_real.yaml], gorilla's solver) is
`torch.optim.lr_scheduler.CyclicLR` in mode ``triangular`` (not ``triangular2`` as the paper says): the lr
climbs linearly from 2e-5 to 5e-4 over 20k iterations and falls back over the next 20k, every cycle peaking at
5e-4 again; momentum is not cycled (Adam has no `momentum` key). HouseCat6D uses 14,250-iteration half cycles.
We use torch's own class so the values match the official run exactly: 2e-5 at iteration 0, 2.6e-4 at 10k,
5e-4 at 20k, 2e-5 at 40k.

`constant` exists for small experiments and tests. CyclicLR sets the optimiser's lr to `base_lr` at
construction, so the lr given to Adam itself is irrelevant (the official yaml's 0.01 is never used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["ScheduleConfig", "build_scheduler"]


@dataclass
class ScheduleConfig:
    """Per-iteration lr schedule. Defaults are the official CleanPose/AG-Pose NOCS recipe."""

    kind: Literal["cyclic", "constant"] = "cyclic"
    base_lr: float = 2e-5  # lower bound of each cycle (and the lr at iteration 0)
    max_lr: float = 5e-4  # upper bound, reached every `step_size_up + step_size_down` iterations
    step_size_up: int = 20_000  # iterations from base to max (HouseCat6D: 14_250)
    step_size_down: int = 20_000  # iterations from max back to base
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"  # official: triangular
    gamma: float = 1.0  # only used by exp_range

    def validate(self) -> None:
        if not 0.0 < self.base_lr:
            raise ValueError(f"base_lr must be > 0, got {self.base_lr}")
        if self.kind == "cyclic":
            if self.max_lr < self.base_lr:
                raise ValueError(f"max_lr ({self.max_lr}) must be >= base_lr ({self.base_lr})")
            if self.step_size_up < 1 or self.step_size_down < 1:
                raise ValueError("step_size_up and step_size_down must be >= 1 iteration")


def build_scheduler(optimizer: torch.optim.Optimizer,
                    cfg: ScheduleConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Scheduler for `optimizer`; call `.step()` once per iteration, after `optimizer.step()`."""
    if cfg.kind == "constant":
        for group in optimizer.param_groups:
            group["lr"] = cfg.base_lr
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return torch.optim.lr_scheduler.CyclicLR(
        optimizer,
        base_lr=cfg.base_lr,
        max_lr=cfg.max_lr,
        step_size_up=cfg.step_size_up,
        step_size_down=cfg.step_size_down,
        mode=cfg.mode,
        gamma=cfg.gamma,
        cycle_momentum=False,  # Adam has no 'momentum'; the official config sets this too
    )
