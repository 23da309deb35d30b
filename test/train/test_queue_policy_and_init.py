"""The confounder queue's `policy` and `init` options as the trainer applies them (issue 18 item 4).

- `policy: per_epoch` (paper text): pushes are staged and enter the queue when the first data source finishes
  its epoch, not before; `per_iteration` (official) changes the queue after the first step;
- `init: teacher` (official) needs the training config's `queue_init` file of teacher features, and a run
  without one stops before training with an error that says how to fix it; `init: random` keeps the model's
  own seeded entries and refuses a file.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from cleanpose_core.config import ConfigError
from cleanpose_core.models.confounder_queue import ConfounderQueue, QueueConfig
from cleanpose_core.train.config import DataSourceConfig, TrainConfig
from cleanpose_core.train.queue_init import initialise_queue, random_queue, save_queue
from cleanpose_core.train.schedules import ScheduleConfig
from cleanpose_core.train.trainer import FINAL_NAME, Components, train
from test_trainer_standin import TinyData, standin_loss

CAT_NUM, WIDTH, LENGTH = 3, 8, 10  # LENGTH > the pushes of an epoch: no staged entry is dropped
BATCHES_PER_EPOCH = 3  # 9 samples, batches of 3


class QueueStandIn(nn.Module):
    """A tiny regressor whose context comes from a real `ConfounderQueue`, pushed by the engine after each
    step."""

    def __init__(self, policy: str = "per_iteration", init: str = "random") -> None:
        super().__init__()
        self.encoder = nn.Linear(4, WIDTH)
        self.head = nn.Linear(2 * WIDTH, 1)
        cfg = QueueConfig(length=LENGTH, sample_num=2, policy=policy, init=init)
        self.queue = ConfounderQueue(cfg, CAT_NUM, WIDTH, generator=torch.Generator().manual_seed(0))
        self.generator = torch.Generator().manual_seed(1)

    def forward(self, batch):
        feat = self.encoder(batch["x"])  # (B, C)
        ctx = self.queue.sample(batch["category_label"], self.generator).mean(1)  # (B, C)
        return {"pred": self.head(torch.cat([feat, ctx], 1)).squeeze(1), "queue_feat": feat}


def components(policy: str, init: str = "random"):
    built = []

    def build(cfg: TrainConfig, device: torch.device) -> Components:
        model = QueueStandIn(policy, init)
        built.append(model.queue.entries.clone())  # the initial queue
        return Components(model=model, loss_fn=standin_loss, model_config={"name": "queue-standin"},
                          build_dataset=lambda s: TinyData(9, 1), generators={"queue": model.generator})

    return build, built


def config(iterations: int, queue_init=None) -> TrainConfig:
    return TrainConfig(
        model="standin",
        sources=[DataSourceConfig(name="a", batch_size=3)],
        schedule=ScheduleConfig(kind="constant", base_lr=1e-3),
        iterations=iterations,
        checkpoint_every=100,
        log_every=1,
        seed=3,
        device="cpu",
        threads=1,
        queue_init=queue_init,
    )


def final_queue(out) -> dict[str, torch.Tensor]:
    state = torch.load(out / FINAL_NAME, weights_only=True)["model"]
    return {k.removeprefix("queue."): v for k, v in state.items() if k.startswith("queue.")}


def test_per_epoch_queue_changes_at_the_epoch_end_and_not_before(tmp_path):
    build, initial = components("per_epoch")
    train(config(BATCHES_PER_EPOCH - 1), tmp_path / "mid", build_components=build, progress=False)
    mid = final_queue(tmp_path / "mid")
    assert torch.equal(mid["entries"], initial[0])  # two steps in: nothing committed yet ...
    assert int(mid["pending_count"].sum()) == 3 * (BATCHES_PER_EPOCH - 1)  # ... but every push staged

    train(config(BATCHES_PER_EPOCH), tmp_path / "end", build_components=build, progress=False)
    end = final_queue(tmp_path / "end")
    assert not torch.equal(end["entries"], initial[1])  # the epoch's last step committed the staged entries
    assert int(end["pending_count"].sum()) == 0
    # FIFO: a category that got m of the epoch's pushes keeps its N_q - m newest initial entries, moved
    # forward
    pushed = [
        next(m for m in range(LENGTH + 1) if torch.equal(end["entries"][c, : LENGTH - m], initial[1][c, m:]))
        for c in range(CAT_NUM)
    ]
    assert sum(pushed) == 9  # all nine pushes of the epoch

    train(config(BATCHES_PER_EPOCH + 1), tmp_path / "next", build_components=build, progress=False)
    after = final_queue(tmp_path / "next")
    assert torch.equal(after["entries"], end["entries"])  # the next epoch's pushes wait for its end again
    assert int(after["pending_count"].sum()) == 3


def test_per_iteration_queue_changes_after_the_first_step(tmp_path):
    build, initial = components("per_iteration")
    train(config(1), tmp_path / "one", build_components=build, progress=False)
    state = final_queue(tmp_path / "one")
    assert not torch.equal(state["entries"], initial[0])
    assert int(state["pending_count"].sum()) == 0


def test_teacher_init_without_a_queue_file_stops_before_training(tmp_path):
    build, _ = components("per_iteration", init="teacher")
    with pytest.raises(
        ConfigError, match=r"causal.queue.init: teacher.*no queue_init.*queue-init.*init: random"
    ):
        train(config(1), tmp_path / "run", build_components=build, progress=False)
    assert not (tmp_path / "run" / FINAL_NAME).exists()


def test_queue_init_follows_the_configured_init(tmp_path):
    teacher_file, random_file = tmp_path / "teacher.pt", tmp_path / "random.pt"
    entries = torch.randn(CAT_NUM, LENGTH, WIDTH)
    save_queue(entries, teacher_file, "pointnet2_ssg teacher t.pt (test), seed 0")
    save_queue(random_queue(CAT_NUM, LENGTH, WIDTH, seed=1), random_file, "random N(0,1), seed 1")

    model = QueueStandIn(init="teacher")
    initialise_queue(model, teacher_file)
    assert torch.equal(model.queue.entries, entries)
    with pytest.raises(ConfigError, match="holds random entries.*init is teacher"):
        initialise_queue(QueueStandIn(init="teacher"), random_file)

    model = QueueStandIn(init="random")
    own = model.queue.entries.clone()
    initialise_queue(model, None)  # the model's own seeded N(0, random_std^2) entries stay
    assert torch.equal(model.queue.entries, own)
    with pytest.raises(ConfigError, match="queue_init .*teacher.pt is set but causal.queue.init is random"):
        initialise_queue(QueueStandIn(init="random"), teacher_file)

    no_queue = nn.Module()
    initialise_queue(no_queue, None)  # the causal module off: nothing to do
    with pytest.raises(ConfigError, match="no confounder queue"):
        initialise_queue(no_queue, teacher_file)


def seeded_components(policy: str):
    """`components`, with the run's seed in the model config as the real network's config has it."""
    build, _ = components(policy)
    return lambda cfg, device: dataclasses.replace(build(cfg, device), model_config={"name": "queue-standin",
                                                                                     "seed": cfg.seed})


def test_fine_tuning_starts_from_the_init_weights_file_queue_included(tmp_path):
    build = seeded_components("per_epoch")  # per_epoch: no push within the first epoch, the queue stays
    train(config(BATCHES_PER_EPOCH - 1), tmp_path / "base", build_components=build, progress=False)
    base = torch.load(tmp_path / "base" / FINAL_NAME, weights_only=True)["model"]
    frozen = config(BATCHES_PER_EPOCH - 1)
    frozen.schedule = ScheduleConfig(kind="constant", base_lr=0.0)  # no step moves a weight
    frozen.seed = 11  # another seed (the model config records it): fresh weights and queue would differ
    frozen.init_weights = str(tmp_path / "base" / FINAL_NAME)
    train(frozen, tmp_path / "tuned", build_components=seeded_components("per_epoch"), progress=False)
    tuned = torch.load(tmp_path / "tuned" / FINAL_NAME, weights_only=True)["model"]
    assert tuned.keys() == base.keys()
    for key in base:  # the staged pushes of the per_epoch policy are this run's own
        if not key.startswith("queue.pending"):
            assert torch.equal(tuned[key], base[key]), key
    assert torch.equal(tuned["queue.entries"], base["queue.entries"])

    frozen.init_weights = None
    frozen.queue_init = None
    train(frozen, tmp_path / "fresh", build_components=seeded_components("per_epoch"), progress=False)
    fresh = torch.load(tmp_path / "fresh" / FINAL_NAME, weights_only=True)["model"]
    assert not torch.equal(fresh["encoder.weight"], base["encoder.weight"])


def test_fine_tuning_refuses_another_model_config_and_a_queue_file(tmp_path):
    from cleanpose_core.io import WeightsError

    build, _ = components("per_epoch")
    train(config(1), tmp_path / "base", build_components=build, progress=False)
    other = tmp_path / "other.pt"
    data = torch.load(tmp_path / "base" / FINAL_NAME, weights_only=True)
    torch.save({**data, "model_config": {"name": "another-network"}}, other)
    cfg = config(1)
    cfg.init_weights = str(other)
    with pytest.raises(WeightsError, match="different model config"):
        train(cfg, tmp_path / "tuned", build_components=components("per_epoch")[0], progress=False)
    cfg.init_weights = str(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        train(cfg, tmp_path / "tuned2", build_components=components("per_epoch")[0], progress=False)
    with pytest.raises(ConfigError, match="init_weights and queue_init"):
        TrainConfig(init_weights="a.pt", queue_init="q.pt").validate()
