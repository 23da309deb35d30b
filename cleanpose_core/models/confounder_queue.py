"""The dynamic confounder queue of CleanPose: per-category FIFOs of keypoint-feature means, as module state.

Paper: CleanPose §4.2 ("dynamic queue", MoCo-style) and Tab. 5a / 7a. Official code: a Python list of
`cat_num` lists of N_q (1, C) tensors in [CP model/Net.py], initialised by [CP queue_extraction.py];
architecture-facts §2.6.

Behaviour kept from the official code:
- sampling: for *each* category, N_s distinct entries drawn uniformly; every sample of that category in the
  batch gets the same N_s entries -> (B, N_s, C);
- FIFO update: one entry per sample, pushed in batch order into its own category, oldest entry dropped;
  index 0 of `entries[c]` is the oldest entry, index N_q - 1 the newest (the official list order).

Fixed or changed, and why:
- the queue is a registered buffer (cat_num, N_q, C), so it is saved with every checkpoint (officially it
  is pickled only at the last epoch and paired with every earlier checkpoint);
- sampling takes an explicit `torch.Generator`, so test-time results are reproducible;
- `push` is a no-op in eval mode, so evaluation never changes the queue;
- under torch.distributed, `push` all-gathers the entries of every rank and pushes them in rank order, so
  every process holds the same queue (the official code is single-process);
- ablation switches of the paper: `update` fifo / similarity (replace the most similar entry, Tab. 5a
  "Similarity") / none ("w/o update"); `storage` queue / memory_bank (Tab. 5a: a memory bank has no age order,
  so a pushed entry overwrites a uniformly drawn slot; the paper's bank is indexed by training sample, which
  we do not track); `policy` per_iteration (official) / per_epoch (paper text: entries are staged during the
  epoch and enter the queue at `end_epoch()`, which the trainer calls at every epoch end); `init` teacher
  (official, a file is required) / random (Tab. 7a), read by the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch import distributed as dist
from torch.nn import functional as F

__all__ = ["QueueConfig", "ConfounderQueue"]


@dataclass
class QueueConfig:
    length: int = 80  # N_q, entries per category (official: 80 NOCS, 100 HouseCat6D)
    sample_num: int = 12  # N_s, entries drawn per category per forward (official `select_num`)
    storage: Literal["queue", "memory_bank"] = "queue"  # Tab. 5a storage
    update: Literal["fifo", "similarity", "none"] = "fifo"  # Tab. 5a update rule
    # official: every iteration; per_epoch (paper text): pushes are staged and enter the queue when the
    # trainer ends an epoch (`end_epoch`, called when the first data source finishes its epoch;
    # train/trainer.py)
    policy: Literal["per_iteration", "per_epoch"] = "per_iteration"
    # teacher (official): the trainer fills the queue from the training config's `queue_init` file of teacher
    # features (a ULIP-2 PN++ SSG in the official code) and refuses to start without it; random (Tab. 7a):
    # the model's own seeded N(0, random_std^2) entries, with no file (train/queue_init.py `initialise_queue`)
    init: Literal["teacher", "random"] = "teacher"
    random_std: float = 1.0  # std of the N(0, std^2) entries of a random initialisation

    def validate(self) -> None:
        if self.length < 1 or not 1 <= self.sample_num <= self.length:
            raise ValueError(f"need 1 <= sample_num ({self.sample_num}) <= length ({self.length})")
        if self.random_std <= 0:
            raise ValueError(f"random_std must be > 0, got {self.random_std}")


def _all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` (B_r, ...) of every rank in rank order; ranks may hold different B_r."""
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    n_max = int(max(s.item() for s in sizes))
    padded = x.new_zeros((n_max, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)], dim=0)


class ConfounderQueue(nn.Module):
    """Per-category store of confounder features with sampling and FIFO (or ablation) updates.

    Buffers (all in the state_dict): `entries` (cat_num, N_q, C); `pending` (cat_num, N_q, C) and
    `pending_count` (cat_num,) holding entries staged by the per-epoch policy.
    """

    def __init__(self, cfg: QueueConfig, cat_num: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if cat_num < 1 or dim < 1:
            raise ValueError(f"cat_num ({cat_num}) and dim ({dim}) must be >= 1")
        self.cfg, self.cat_num, self.dim = cfg, cat_num, dim
        self.register_buffer("entries", torch.empty(cat_num, cfg.length, dim))
        self.register_buffer("pending", torch.zeros(cat_num, cfg.length, dim))
        self.register_buffer("pending_count", torch.zeros(cat_num, dtype=torch.long))
        self.reset_random(generator)

    # -- initialisation ------------------------------------------------------------------------------------

    @torch.no_grad()
    def reset_random(self, generator: torch.Generator | None = None) -> None:
        """Fill every entry with N(0, random_std^2) noise (paper Tab. 7a "Random") and clear staged
        entries."""
        noise = torch.randn(self.entries.shape, generator=generator) * self.cfg.random_std
        self.entries.copy_(noise)
        self.pending.zero_()
        self.pending_count.zero_()

    @torch.no_grad()
    def fill_(self, entries: torch.Tensor) -> None:
        """Replace the whole queue, e.g. with teacher features (cat_num, N_q, C) from `cleanpose
        queue-init`."""
        if tuple(entries.shape) != tuple(self.entries.shape):
            raise ValueError(f"queue entries must have shape {tuple(self.entries.shape)} "
                             f"(cat_num, N_q, C), got {tuple(entries.shape)}")
        if not torch.isfinite(entries).all():
            raise ValueError("queue entries contain NaN or inf")
        self.entries.copy_(entries)
        self.pending.zero_()
        self.pending_count.zero_()

    # -- sampling ------------------------------------------------------------------------------------------

    def _check_ids(self, class_ids: torch.Tensor) -> torch.Tensor:
        class_ids = class_ids.reshape(-1).long()
        if class_ids.numel() and (class_ids.min() < 0 or class_ids.max() >= self.cat_num):
            raise ValueError(f"category ids must lie in [0, {self.cat_num}), got {class_ids.tolist()}")
        return class_ids

    @torch.no_grad()
    def sample(self, class_ids: torch.Tensor, generator: torch.Generator | None = None,
               n_s: int | None = None) -> torch.Tensor:
        """Draw confounder samples for a batch.

        Args:
            class_ids: (B,) 0-based category of each sample.
            generator: CPU generator driving the draw (seed it for reproducible test-time results).
            n_s: entries per category; defaults to `cfg.sample_num`.

        Returns:
            (B, n_s, C): for every category, n_s distinct entries drawn uniformly without replacement; all
            samples of one category share the same draw.
        """
        class_ids = self._check_ids(class_ids)
        n_s = self.cfg.sample_num if n_s is None else n_s
        if not 1 <= n_s <= self.cfg.length:
            raise ValueError(f"cannot draw {n_s} distinct entries from a queue of {self.cfg.length}")
        # One uniform random permutation per category (argsort of iid uniforms), first n_s kept.
        idx = torch.rand(self.cat_num, self.cfg.length, generator=generator).argsort(dim=1)[:, :n_s]
        idx = idx.to(self.entries.device)
        per_cat = self.entries.gather(1, idx.unsqueeze(2).expand(-1, -1, self.dim))  # (cat_num, n_s, C)
        return per_cat[class_ids.to(self.entries.device)]

    # -- updates -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def push(self, feats: torch.Tensor, class_ids: torch.Tensor, *, sync: bool = True,
             generator: torch.Generator | None = None) -> bool:
        """Add one entry per sample to its category, in batch order (training mode only).

        Args:
            feats: (B, C) entries (officially the keypoint mean of the front-door output), detached here.
            class_ids: (B,) 0-based categories.
            sync: under an initialised torch.distributed, all-gather every rank's entries first and push
                them in rank order, so all ranks keep the same queue. Pass False if the caller gathered.
            generator: draws the overwritten slot for `storage: memory_bank`.

        Returns:
            True if the queue (or its staging area) changed; False in eval mode or with `update: none`.
        """
        if not self.training or self.cfg.update == "none":
            return False
        if feats.dim() != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"queue entries must be (B, {self.dim}), got {tuple(feats.shape)}")
        class_ids = self._check_ids(class_ids).to(feats.device)
        if class_ids.numel() != feats.shape[0]:
            raise ValueError(f"{feats.shape[0]} entries but {class_ids.numel()} category ids")
        feats = feats.detach().to(self.entries)
        if sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            feats = _all_gather_rows(feats)
            class_ids = _all_gather_rows(class_ids)
        class_ids = class_ids.to(self.entries.device)
        if self.cfg.policy == "per_epoch":
            self._stage(feats, class_ids)
        else:
            self._write_entries(feats, class_ids, generator)
        return True

    @torch.no_grad()
    def end_epoch(self, generator: torch.Generator | None = None) -> bool:
        """Per-epoch policy: move the staged entries (oldest first) into the queue; no-op otherwise."""
        if self.cfg.policy != "per_epoch" or not self.training or int(self.pending_count.sum()) == 0:
            return False
        for c in range(self.cat_num):
            m = int(self.pending_count[c])
            if m:
                new = self.pending[c, self.cfg.length - m:]
                self._write_entries(new, torch.full((m,), c, device=new.device), generator)
        self.pending.zero_()
        self.pending_count.zero_()
        return True

    def _stage(self, feats: torch.Tensor, class_ids: torch.Tensor) -> None:
        """Keep the newest N_q staged entries per category, oldest first, right-aligned in `pending`."""
        length = self.cfg.length
        for c in class_ids.unique().tolist():
            new = feats[class_ids == c][-length:]
            m = new.shape[0]
            self.pending[c] = torch.cat([self.pending[c, m:], new], dim=0)
            self.pending_count[c] = min(length, int(self.pending_count[c]) + m)

    def _write_entries(
        self, feats: torch.Tensor, class_ids: torch.Tensor, generator: torch.Generator | None
    ) -> None:
        if self.cfg.update == "fifo" and self.cfg.storage == "queue":
            for c in class_ids.unique().tolist():
                new = feats[class_ids == c][-self.cfg.length:]  # batch order kept by boolean indexing
                self.entries[c] = torch.cat([self.entries[c, new.shape[0]:], new], dim=0)
            return
        # Slot-wise updates depend on earlier pushes of the same batch, so they run in batch order.
        for f, c in zip(feats, class_ids.tolist()):
            if self.cfg.update == "similarity":
                slot = int(F.cosine_similarity(self.entries[c], f.unsqueeze(0), dim=1).argmax())
            else:  # memory bank, fifo-style replacement without an age order: a uniformly drawn slot
                slot = int(torch.randint(self.cfg.length, (1,), generator=generator))
            self.entries[c, slot] = f

    def extra_repr(self) -> str:
        return (f"cat_num={self.cat_num}, length={self.cfg.length}, dim={self.dim}, "
                f"sample_num={self.cfg.sample_num}, storage={self.cfg.storage}, update={self.cfg.update}, "
                f"policy={self.cfg.policy}")
