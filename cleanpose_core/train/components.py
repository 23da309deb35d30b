"""What a training run is made of (`Components`), and the default ones: the CleanPose network, loss, readers.

`trainer.train` takes a `build_components` callable so tests can train stand-ins; `default_components` is the
real one. `Components` is defined here, not in `trainer.py`, so that the trainer imports this module and never
the other way round:
the model config YAML (plus `model_overrides`) becomes a `CleanPoseConfig`, `build_model` makes the network,
`losses` its weighted loss, and each data source becomes a NOCS (CAMERA / REAL / synthetic) or HouseCat6D
training reader whose own config dataclass checks the source's `dataset` options.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import ConfigError, from_dict, load_yaml, read_yaml_mapping, to_dict
from .config import DataSourceConfig, TrainConfig
from .engine import LossFn
from .loader import TrainDataset

__all__ = ["Components", "deep_merge", "load_model_config", "build_dataset", "queue_sources",
           "default_components"]


@dataclass
class Components:
    """What a run trains: the network, its loss, its resolved config, and how to open a data source."""

    model: nn.Module
    loss_fn: LossFn
    model_config: dict[str, Any]  # YAML-safe resolved model config, saved with every checkpoint
    build_dataset: Callable[[DataSourceConfig], TrainDataset]
    # Extra generators (name -> generator) whose state must survive a resume, e.g. the queue sampler's.
    generators: dict[str, torch.Generator] = dataclasses.field(default_factory=dict)


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied key by key, recursing into nested mappings (inputs unchanged)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        nested = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = deep_merge(out[k], v) if nested else copy.deepcopy(v)
    return out


def load_model_config(path: str | Path, overrides: dict[str, Any] | None = None):
    """`CleanPoseConfig` from a model YAML with `overrides` merged in; errors name the file and key."""
    from ..models.cleanpose import CleanPoseConfig

    data = read_yaml_mapping(path)
    try:
        return from_dict(CleanPoseConfig, deep_merge(data, overrides or {}))
    except ConfigError as exc:
        raise ConfigError(f"{path} (with model_overrides): {exc}") from exc


def build_dataset(source: DataSourceConfig) -> TrainDataset:
    """The training reader for one data source; its config class validates `source.dataset`."""
    where = f"sources.{source.name}.dataset"
    if source.kind == "nocs":
        from ..data import nocs

        return nocs.NOCSTrainDataset(from_dict(nocs.NOCSTrainConfig, source.dataset, where))
    if source.kind == "housecat6d":
        from ..data import housecat6d

        options = from_dict(housecat6d.HouseCat6DTrainConfig, source.dataset, where)
        return housecat6d.HouseCat6DTrainDataset(options)
    raise ConfigError(f"sources.{source.name}.kind: unknown reader {source.kind!r}")


def queue_sources(train_config: str | Path | None, data_root: str | Path | None,
                  source: str = "real") -> list[DataSourceConfig]:
    """Data sources for `cleanpose queue-init`: a training config's sources, or one NOCS source at a root.

    Args:
        source: the NOCS reader's `source` ('camera', 'real' or 'synthetic') when `data_root` is used.
    """
    if train_config is not None:
        return load_yaml(TrainConfig, train_config).sources
    if data_root is None:
        raise ConfigError("queue-init: give --data DIR or --config TRAIN.yaml")
    return [DataSourceConfig(name="data", kind="nocs", dataset={"root": str(data_root), "source": source})]


def default_components(cfg: TrainConfig, device: torch.device) -> Components:
    """CleanPose (as configured by `cfg.model` + `cfg.model_overrides`), its loss, and the readers."""
    from ..models import losses
    from ..models.cleanpose import build_model

    # The run's seed also seeds the model's own generators (augmentation, queue sampling), so runs with
    # different seeds differ in every random draw; an explicit `model_overrides.seed` still wins.
    model_cfg = load_model_config(cfg.model, {"seed": cfg.seed, **cfg.model_overrides})
    model = build_model(model_cfg)
    return Components(model=model, loss_fn=losses.build_loss(model_cfg), model_config=to_dict(model_cfg),
                      build_dataset=build_dataset, generators=dict(model.generators))
