"""The official cyclic learning-rate schedule, stepped once per iteration."""

import pytest
import torch

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.train.schedules import ScheduleConfig, build_scheduler


def _lrs_at(cfg: ScheduleConfig, iterations: list[int]) -> dict[int, float]:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01)  # the official yaml's unused 0.01
    sched = build_scheduler(opt, cfg)
    out, wanted = {}, set(iterations)
    for it in range(max(iterations) + 1):
        if it in wanted:
            out[it] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return out


def test_official_cyclic_lr_values_at_reference_iterations():
    lrs = _lrs_at(ScheduleConfig(), [0, 10_000, 20_000, 40_000, 60_000, 120_000])
    assert lrs[0] == pytest.approx(2e-5)
    assert lrs[10_000] == pytest.approx(2.6e-4)
    assert lrs[20_000] == pytest.approx(5e-4)
    assert lrs[40_000] == pytest.approx(2e-5)
    assert lrs[60_000] == pytest.approx(5e-4)  # triangular: every cycle peaks at max_lr (not triangular2)
    assert lrs[120_000] == pytest.approx(2e-5)


def test_constant_schedule_keeps_base_lr():
    lrs = _lrs_at(ScheduleConfig(kind="constant", base_lr=3e-4), [0, 5, 50])
    assert list(lrs.values()) == pytest.approx([3e-4] * 3)


def test_schedule_config_rejects_max_below_base():
    with pytest.raises(ConfigError, match="max_lr"):
        from_dict(ScheduleConfig, {"base_lr": 1e-3, "max_lr": 1e-4})
