"""The training loop's guarantees, proven on a tiny stand-in model so they do not depend on the network.

- exact resume: K iterations in one go == K/2, checkpoint, a *fresh process* loads it, K/2 more (bit for bit:
  weights, optimiser state, queue, RNG), with the split inside an epoch and two mixed sources;
- torchrun with 2 CPU processes (gloo): gradients are averaged (the weights equal a single-process replay
  with averaged gradients) and the confounder queue is identical on both ranks and holds every rank's pushes;
- the mixed-source loss is (n_a·L_a + n_b·L_b)/(n_a + n_b); a non-finite loss stops with every term named;
- each sample's random draws depend only on (seed, epoch, index), not on the number of workers.

The stand-in mimics what the engine relies on: random augmentation from the global torch RNG, a frozen
sub-module (like the teacher, left out of checkpoints), a confounder queue buffer sampled with its own
generator, and per-sample entries pushed after every step. This file doubles as the script the subprocesses
run (`python test_trainer_standin.py resume|ddp ...`).
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cleanpose_core.io import load_checkpoint
from cleanpose_core.train.config import DataSourceConfig, TrainConfig
from cleanpose_core.train.engine import NonFiniteLossError, mixed_source_loss, train_one_step
from cleanpose_core.train.loader import SourceStream
from cleanpose_core.train.schedules import ScheduleConfig, build_scheduler
from cleanpose_core.train.trainer import FINAL_NAME, Components, train

REPO = Path(__file__).resolve().parents[2]
CAT_NUM, QUEUE_LEN, SAMPLES, WIDTH = 3, 5, 2, 8


# ------------------------------------------------------------------------------------------------ stand-ins
class TinyQueue(nn.Module):
    """FIFO per category in a buffer, like the real ConfounderQueue."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("entries", torch.randn(CAT_NUM, QUEUE_LEN, WIDTH))

    def sample(self, generator: torch.Generator) -> torch.Tensor:  # (cat, S, C)
        idx = torch.stack([torch.randperm(QUEUE_LEN, generator=generator)[:SAMPLES] for _ in range(CAT_NUM)])
        return torch.gather(self.entries, 1, idx[..., None].expand(-1, -1, WIDTH))

    def push(self, feats: torch.Tensor, labels: torch.Tensor, *, sync: bool = True) -> None:
        # Never gathers across ranks itself: the DDP test proves the engine's gathering keeps ranks equal.
        for f, c in zip(feats, labels.tolist()):
            self.entries[c] = torch.cat([self.entries[c, 1:], f[None]])


class StandIn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, WIDTH), nn.Tanh(), nn.Linear(WIDTH, WIDTH))
        self.head = nn.Linear(2 * WIDTH, 1)
        self.teacher = nn.Linear(4, 4).requires_grad_(False)  # frozen: must not be checkpointed
        self.queue = TinyQueue()
        self.generator = torch.Generator().manual_seed(7)
        self.record: list[dict[str, torch.Tensor]] = []

    def forward(self, batch):
        x = batch["x"] + 0.01 * torch.randn_like(batch["x"])  # "augmentation" from the global torch RNG
        feat = self.encoder(x)  # (B, C)
        ctx = self.queue.sample(self.generator)[batch["category_label"]].mean(1)  # (B, C)
        self.record.append({"x": x.detach().clone(), "ctx": ctx.clone(), "y": batch["y"].clone(),
                            "labels": batch["category_label"].clone()})
        pred = self.head(torch.cat([feat, ctx], 1)).squeeze(1)
        return {"pred": pred, "queue_feat": feat}


def standin_loss(outputs, batch):
    err = outputs["pred"] - batch["y"]
    terms = {"loss_mse": (err**2).mean(), "loss_l1": 0.1 * err.abs().mean()}
    terms["loss_all"] = terms["loss_mse"] + terms["loss_l1"]
    return terms


class TinyData(torch.utils.data.Dataset):
    """`size` samples; `reset(epoch, seed)` redraws the epoch (with replacement) like the NOCS reader."""

    def __init__(self, size: int, offset: int) -> None:
        g = torch.Generator().manual_seed(offset)
        self.x, self.y = torch.randn(size, 4, generator=g), torch.randn(size, generator=g)
        self.order = list(range(size))

    def reset(self, epoch: int, seed: int) -> None:
        self.order = np.random.default_rng([seed, epoch]).integers(0, len(self.x), len(self.x)).tolist()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        j = self.order[i]
        noise = np.float32(np.random.normal(0.0, 0.05))  # global numpy RNG, like the official reader
        return {"x": self.x[j] + noise, "y": self.y[j], "category_label": torch.tensor(j % CAT_NUM)}


BUILT: list[Components] = []


def standin_components(cfg: TrainConfig, device: torch.device) -> Components:
    model = StandIn()
    comp = Components(model=model, loss_fn=standin_loss, model_config={"name": "standin", "width": WIDTH},
                      build_dataset=lambda s: TinyData(s.dataset["size"], s.dataset["offset"]),
                      generators={"queue": model.generator})
    BUILT.append(comp)
    return comp


def standin_config(iterations: int, schedule: str = "cyclic") -> TrainConfig:
    return TrainConfig(
        model="standin",
        sources=[DataSourceConfig(name="a", batch_size=3, dataset={"size": 14, "offset": 1}),
                 DataSourceConfig(name="b", batch_size=1, dataset={"size": 5, "offset": 2})],
        schedule=ScheduleConfig(kind=schedule, base_lr=1e-3, max_lr=1e-2, step_size_up=3, step_size_down=3),
        iterations=iterations, checkpoint_every=100, log_every=2, seed=3, device="cpu", threads=1,
    )


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------------------- tests
def test_resume_in_fresh_process_reproduces_uninterrupted_weights_bit_for_bit(tmp_path):
    k = 10  # source a: 4 batches per epoch, so the split at 5 falls inside an epoch; b: 5 per epoch
    train(standin_config(k), tmp_path / "straight", progress=False, build_components=standin_components)
    train(standin_config(k // 2), tmp_path / "split", progress=False, build_components=standin_components)
    subprocess.run([sys.executable, __file__, "resume", str(tmp_path / "split"), str(k)], env=_env(),
                   check=True, cwd=REPO, timeout=120)

    a = torch.load(tmp_path / "straight" / FINAL_NAME, weights_only=True)
    b = torch.load(tmp_path / "split" / FINAL_NAME, weights_only=True)
    assert a["step"] == b["step"] == k
    assert set(a["model"]) == set(b["model"]) and not any(key.startswith("teacher.") for key in a["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    ca = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    cb = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert ca["data"] == cb["data"] == {"a": {"epoch": 2, "consumed": 2}, "b": {"epoch": 1, "consumed": 5}}
    for pid, state in ca["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], cb["optimizer"]["state"][pid]["exp_avg_sq"])
    assert torch.equal(ca["rng"][0]["torch"], cb["rng"][0]["torch"])
    assert torch.equal(ca["rng"][0]["generators"]["queue"], cb["rng"][0]["generators"]["queue"])
    assert ca["scheduler"]["last_epoch"] == cb["scheduler"]["last_epoch"] == k


def test_two_gloo_processes_average_gradients_and_keep_queues_identical(tmp_path):
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), __file__, "ddp", str(tmp_path)]
    subprocess.run(cmd, env=_env(), check=True, cwd=REPO, timeout=180)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    steps = len(r0["record"])
    assert steps == 4
    # Different data on the two ranks, yet identical weights and queues afterwards.
    assert not torch.equal(r0["record"][0]["x"], r1["record"][0]["x"])
    for key in r0["params"]:
        assert torch.equal(r0["params"][key], r1["params"][key]), key
    assert torch.equal(r0["queue"], r1["queue"])

    # Replay in one process: average the two ranks' gradients, Adam step, push rank 0's then rank 1's entries.
    torch.manual_seed(3)  # the config seed: same initial weights as the ranks
    ref = StandIn()
    opt = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=1e-3)
    sched = build_scheduler(opt, ScheduleConfig(kind="constant", base_lr=1e-3))
    for t in range(steps):
        grads, feats, labels = [], [], []
        for rec in (r0["record"][t], r1["record"][t]):
            lab, y = rec["labels"], rec["y"]
            ref.zero_grad()
            feat = ref.encoder(rec["x"])
            pred = ref.head(torch.cat([feat, rec["ctx"]], 1)).squeeze(1)
            # sources a (3 samples) and b (1 sample) are weighted 3:1, as in mixed_source_loss
            la = standin_loss({"pred": pred[:3]}, {"y": y[:3]})["loss_all"]
            lb = standin_loss({"pred": pred[3:]}, {"y": y[3:]})["loss_all"]
            (0.75 * la + 0.25 * lb).backward()
            grads.append([p.grad.clone() for p in ref.parameters() if p.requires_grad])
            feats.append(feat.detach())
            labels.append(lab)
        for p, g0, g1 in zip([p for p in ref.parameters() if p.requires_grad], *grads):
            p.grad = (g0 + g1) / 2
        opt.step()
        sched.step()
        ref.queue.push(torch.cat(feats), torch.cat(labels))
    for key, value in ref.state_dict().items():
        if not key.startswith("teacher."):
            torch.testing.assert_close(r0["params"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(r0["queue"], ref.queue.entries, rtol=1e-5, atol=1e-6)


def test_mixed_source_loss_weights_sources_by_their_batch_share():
    outputs = {"pred": torch.tensor([1.0, 2.0, 3.0, 10.0]), "scalar": torch.tensor(5.0)}
    batch = {"y": torch.zeros(4)}

    def loss(o, b):
        assert o["scalar"].dim() == 0  # non-batch outputs are passed through unsliced
        return {"loss_all": (o["pred"] - b["y"]).mean()}

    combined = mixed_source_loss(loss, outputs, batch, [3, 1])["loss_all"]
    torch.testing.assert_close(combined, torch.tensor((3 * 2.0 + 1 * 10.0) / 4))
    assert mixed_source_loss(loss, outputs, batch, [4])["loss_all"].item() == pytest.approx(4.0)


def test_non_finite_loss_stops_with_every_term_named():
    torch.manual_seed(0)
    model = StandIn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = build_scheduler(opt, ScheduleConfig())
    before = copy.deepcopy(model.state_dict())
    batch = {"x": torch.randn(2, 4), "y": torch.tensor([float("nan"), 0.0]),
             "category_label": torch.tensor([0, 1])}
    with pytest.raises(NonFiniteLossError, match=r"iteration 12: loss_mse=nan, loss_l1=nan, loss_all=nan"):
        train_one_step(model, [batch], standin_loss, opt, sched, step=12, device=torch.device("cpu"))
    for key, value in before.items():  # nothing was updated, not even the queue
        assert torch.equal(value, model.state_dict()[key]), key


def test_sample_randomness_does_not_depend_on_worker_count():
    def first_batches(workers: int) -> list[torch.Tensor]:
        stream = SourceStream("a", TinyData(12, 1), 4, workers=workers, seed=5)
        out = [stream.next_batch()["x"] for _ in range(4)]  # crosses an epoch boundary (3 batches/epoch)
        stream.close()
        return out

    torch.manual_seed(0)
    state = torch.get_rng_state()
    serial = first_batches(0)
    assert torch.equal(torch.get_rng_state(), state)  # loading left the model's RNG untouched
    for a, b in zip(serial, first_batches(2)):
        assert torch.equal(a, b)
    assert not torch.equal(serial[0], serial[3])


def test_resume_position_continues_with_the_next_batch():
    stream = SourceStream("a", TinyData(12, 1), 4, seed=5)
    expected = [stream.next_batch()["x"] for _ in range(5)]
    resumed = SourceStream("a", TinyData(12, 1), 4, seed=5)
    resumed.load_state_dict({"epoch": 1, "consumed": 1})
    assert torch.equal(resumed.next_batch()["x"], expected[4])


# ------------------------------------------------------------------------------------- subprocess entries
def _resume_main(out_dir: str, iterations: int) -> None:
    train(standin_config(iterations), out_dir, resume="auto", progress=False,
          build_components=standin_components)


def _ddp_main(out_dir: str) -> None:
    cfg = standin_config(4, schedule="constant")
    train(cfg, Path(out_dir) / "run", progress=False, build_components=standin_components)
    model = BUILT[-1].model
    rank = int(os.environ["RANK"])
    torch.save({"record": model.record,
                "params": {k: v for k, v in model.state_dict().items() if not k.startswith("teacher.")},
                "queue": model.queue.entries}, Path(out_dir) / f"rank{rank}.pt")


if __name__ == "__main__":
    if sys.argv[1] == "resume":
        _resume_main(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "ddp":
        _ddp_main(sys.argv[2])
