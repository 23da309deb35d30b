"""Multi-process training helpers: one place for everything torch.distributed (STYLE.md §14).

Launch with torchrun (``torchrun --nproc_per_node 2 -m cleanpose_core.cli train ...``): rank, world size and
local rank come from its environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Without them
everything runs as a single process and every helper here is a no-op. The backend is NCCL on CUDA and gloo on
CPU. Only rank 0 logs, writes TensorBoard and saves checkpoints (`is_main_process`).

`ShardedSampler` replaces `DistributedSampler`: same padding-by-repetition and rank-strided split, plus a
start offset so a resumed run skips the samples it already consumed without loading them.

The official code is single-GPU; per-source batch sizes in our configs are *per process*, as in torchvision's
references, so 2 processes with batch 40 each see 80 samples per iteration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "DistInfo",
    "init_distributed",
    "is_main_process",
    "barrier",
    "all_gather_tensor",
    "reduce_mean",
    "cleanup",
    "ShardedSampler",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group described by torchrun's environment; single-process info when there is none.

    Args:
        device: 'cpu' or 'cuda' (resolved, not 'auto'); picks gloo or NCCL and, on CUDA, the local GPU.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo()
    env = os.environ
    info = DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if info.world_size == 1:
        return info
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_tensor(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (B, ...) from every rank along dim 0, in rank order; `x` itself when not distributed.

    Every rank must pass the same shape (our per-process batches have a fixed size, drop_last).
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of scalar `values` over ranks, for logging only (the gradients are already averaged by DDP)."""
    if not dist.is_initialized() or dist.get_world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


class ShardedSampler(Sampler[int]):
    """Deterministic per-rank indices for one epoch, like `DistributedSampler`, resumable mid-epoch.

    The epoch's order is a permutation drawn from `torch.Generator().manual_seed(seed + epoch)` (or 0..L-1
    when `shuffle` is False, for datasets whose `reset()` already drew a random order), padded by repetition
    to a multiple of `world_size`, and rank r takes positions r, r + world, ... . The first `start` indices of
    this rank's share are skipped, which is how a resumed run continues inside an epoch.
    """

    def __init__(self, length: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 epoch: int = 0, shuffle: bool = True, start: int = 0) -> None:
        if length < 1:
            raise ValueError("ShardedSampler needs a non-empty dataset")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.length, self.rank, self.world_size = length, rank, world_size
        self.seed, self.epoch, self.shuffle, self.start = seed, epoch, shuffle, start
        self.per_rank = -(-length // world_size)  # ceil
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start {start} outside this rank's {self.per_rank} samples")

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.world_size
        order = (order * -(-total // len(order)))[:total]  # pad by repetition, as DistributedSampler does
        return order[self.rank : total : self.world_size][self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return self.per_rank - self.start
