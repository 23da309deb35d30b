"""`apply_overrides`: the `--set KEY.PATH=VALUE` flags of the CLIs, checked afterwards by `from_dict`."""

from __future__ import annotations

import pytest

from cleanpose_core.cli import main
from cleanpose_core.config import ConfigError, apply_overrides, from_dict, to_dict
from cleanpose_core.train.config import TrainConfig


def test_nested_keys_list_indices_and_yaml_values():
    base = to_dict(TrainConfig())
    out = apply_overrides(base, ["model_overrides.causal.enabled=false", "sources.1.batch_size=4",
                                 "schedule.max_lr=1e-3", "model_overrides.kd={enabled: false}", "seed=7"])
    assert out["model_overrides"] == {"causal": {"enabled": False}, "kd": {"enabled": False}}
    assert out["sources"][1]["batch_size"] == 4 and out["sources"][0]["batch_size"] == 30
    assert out["schedule"]["max_lr"] == pytest.approx(1e-3) and out["seed"] == 7
    assert base["model_overrides"] == {} and base["sources"][1]["batch_size"] == 10  # input unchanged
    cfg = from_dict(TrainConfig, out)
    assert cfg.sources[1].batch_size == 4 and cfg.model_overrides["causal"] == {"enabled": False}


@pytest.mark.parametrize("item, message", [
    ("seed", "expected KEY.PATH=VALUE"),
    ("a..b=1", "expected KEY.PATH=VALUE"),
    ("sources.5.batch_size=1", "index out of range"),
    ("sources.x.batch_size=1", "index out of range"),
    ("seed.value=1", "seed is a value, not a mapping"),
    ("seed=[1", "not valid YAML"),
])
def test_malformed_assignments_name_the_flag(item, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(to_dict(TrainConfig()), [item])


def test_a_misspelt_key_is_caught_by_the_typed_config():
    with pytest.raises(ConfigError, match="iteratons"):
        from_dict(TrainConfig, apply_overrides(to_dict(TrainConfig()), ["iteratons=3"]))
    with pytest.raises(ConfigError, match="batch_size"):
        from_dict(TrainConfig, apply_overrides(to_dict(TrainConfig()), ["sources.0.batch_size=zero"]))


def test_train_cli_rejects_a_bad_set_with_exit_code_2(tmp_path, capsys):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("iterations: 10\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--set", "iteratons=3"]) == 2
    assert "iteratons" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
