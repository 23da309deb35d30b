"""Checkpoints: atomic writes, clear errors for bad files, RNG round trips, frozen modules left out."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from cleanpose_core.io import (
    CheckpointError,
    WeightsError,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_trainable_state_dict,
    restore_rng_state,
    save_checkpoint,
    trainable_state_dict,
)


def _contents(step: int) -> dict:
    return dict(model={"w": torch.full((3,), float(step))}, optimizer={}, scheduler={}, scaler=None,
                step=step, rng=[capture_rng_state()], data={"a": {"epoch": 0, "consumed": step}},
                config={"train": {}})


def test_crash_mid_write_leaves_previous_checkpoint_valid(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, **_contents(1))

    def dying_save(obj, f):  # writes half a file, then the process "dies"
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, **_contents(2))
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary file left behind


def test_missing_truncated_and_foreign_files_raise_checkpoint_error_naming_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, **_contents(3))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt.*unreadable"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    atomic_save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a CleanPose training checkpoint"):
        load_checkpoint(foreign)


def test_save_checkpoint_requires_every_key():
    with pytest.raises(CheckpointError, match="missing.*rng"):
        save_checkpoint("unused.pt", model={}, optimizer={}, scheduler={}, scaler=None, step=0, data={},
                        config={})


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    gen = torch.Generator().manual_seed(11)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leave a cached Gaussian in numpy's legacy state
    save_checkpoint(tmp_path / "c.pt", **{**_contents(0), "rng": [capture_rng_state({"queue": gen})]})
    def draw():
        return (random.random(), np.random.normal(), np.random.rand(), torch.rand(2),
                torch.rand(2, generator=gen))

    expected = draw()
    random.seed(9), np.random.seed(9), torch.manual_seed(9), gen.manual_seed(9)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0], {"queue": gen})
    got = draw()
    assert got[:3] == expected[:3]
    assert torch.equal(got[3], expected[3]) and torch.equal(got[4], expected[4])


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.teacher = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).requires_grad_(False)
        self.queue = nn.Module()
        self.queue.register_buffer("entries", torch.zeros(2, 5, 4))


def test_frozen_submodules_are_left_out_but_the_queue_buffer_is_kept():
    net = _Net()
    state = trainable_state_dict(net)
    assert "queue.entries" in state and "student.1.running_mean" in state
    assert not any(k.startswith("teacher.") for k in state)
    fresh = _Net()
    load_trainable_state_dict(fresh, state)
    with pytest.raises(WeightsError, match="missing.*queue.entries"):
        load_trainable_state_dict(fresh, {k: v for k, v in state.items() if k != "queue.entries"})
    with pytest.raises(WeightsError, match="unexpected.*bogus"):
        load_trainable_state_dict(fresh, {**state, "bogus": torch.zeros(1)})
    with pytest.raises(WeightsError, match="student.0.weight"):  # a shape mismatch is the same error
        load_trainable_state_dict(fresh, {**state, "student.0.weight": torch.zeros(5, 3)})
