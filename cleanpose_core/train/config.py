"""Training configuration: one typed dataclass per concern, every default visible here (STYLE.md §6-9).

Defaults are the official CleanPose NOCS recipe ([CP config/REAL/camera_real.yaml], architecture-facts §4):
Adam (weight decay 0), CyclicLR triangular 2e-5..5e-4 with 20k/20k iterations stepped every iteration, 120k
iterations, 30 CAMERA + 10 REAL per batch with the loss combined as (30·L_camera + 10·L_real)/40, seed 42, no
mixed precision. `config/train/*.yaml` are instances of `TrainConfig`; unknown keys are errors.

Differences from the official trainer, on purpose:
- checkpoints hold the confounder queue and every RNG state, so resume is exact (official: neither);
- `checkpoint_every` counts iterations (official: every 5 epochs = 20k iterations);
- per-source batch sizes are per process when run under torchrun (the official code is single-GPU).

Relative paths in a config are resolved against the current working directory (run from the repository root).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import ConfigError
from .schedules import ScheduleConfig

__all__ = ["DataSourceConfig", "OptimizerConfig", "TrainConfig", "ScheduleConfig"]


@dataclass
class DataSourceConfig:
    """One training data source and its share of every batch."""

    name: str  # label in logs/checkpoints: 'camera', 'real', 'synthetic', 'housecat6d'
    kind: Literal["nocs", "housecat6d"] = "nocs"  # which reader (synthetic data uses the NOCS reader)
    batch_size: int = 10  # samples of this source per iteration and process (official: camera 30, real 10)
    workers: int = 0  # DataLoader worker processes (official: 12 camera, 4 real); 0 loads in the main process
    # The reader's own options (root folder, source, points per sample, ...). They are checked by the reader's
    # config dataclass, so a misspelt key is still an error that names it.
    dataset: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"source name {self.name!r} must be a non-empty identifier")
        if self.batch_size < 1:
            raise ValueError(f"source {self.name}: batch_size must be >= 1")
        if self.workers < 0:
            raise ValueError(f"source {self.name}: workers must be >= 0")


@dataclass
class OptimizerConfig:
    """Adam over the trainable parameters only (frozen DINOv2 / teacher weights are never optimised)."""

    name: Literal["adam", "adamw"] = "adam"  # official: Adam
    weight_decay: float = 0.0  # official: 0
    betas: tuple[float, float] = (0.9, 0.999)  # torch defaults, as the official code
    eps: float = 1e-8

    def validate(self) -> None:
        if self.weight_decay < 0:
            raise ValueError("weight_decay must be >= 0")


@dataclass
class TrainConfig:
    """A whole training run."""

    model: str = "config/model/cleanpose_paper.yaml"  # model config YAML (CleanPoseConfig)
    # Overrides applied on top of the model YAML, e.g. {causal: {enabled: false}} for an ablation; checked by
    # CleanPoseConfig like the YAML itself.
    model_overrides: dict[str, Any] = field(default_factory=dict)
    sources: list[DataSourceConfig] = field(
        default_factory=lambda: [
            DataSourceConfig(name="camera", batch_size=30, workers=12,
                             dataset={"root": "data", "source": "camera", "num_img_per_epoch": 120_000}),
            DataSourceConfig(name="real", batch_size=10, workers=4,
                             dataset={"root": "data", "source": "real", "num_img_per_epoch": 40_000}),
        ]
    )
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    iterations: int = 120_000  # official: 30 epochs x 4000 mini-batches
    checkpoint_every: int = 5_000  # iterations between checkpoints (always one at the end)
    log_every: int = 50  # iterations between TensorBoard points / progress-bar loss updates
    seed: int = 42  # official rd_seed (AG-Pose used 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    amp: bool = False  # float16 autocast + GradScaler on CUDA; official: off
    deterministic: bool = True  # torch.use_deterministic_algorithms: needed for bit-exact resume on CUDA
    threads: int = 0  # torch CPU threads per process; 0 keeps torch's default
    # bfloat16 autocast of these top-level modules' forward (train/mixed_precision.py): on = always, auto = on
    # CPUs that compute bf16 natively (AMX / AVX512-BF16), off = float32 everywhere. The frozen KD teacher and
    # the image backbone are ~40 % of a lite iteration and cost about half in bf16; the geometry (point
    # sampling, grouping, the losses) stays float32.
    bf16: Literal["auto", "on", "off"] = "auto"
    bf16_modules: list[str] = field(default_factory=lambda: ["teacher", "rgb_extractor"])
    # Confounder-queue initialisation: a tensor file from `cleanpose queue-init` (cat_num, N_q, C).
    # Required when the model has the causal module with `causal.queue.init: teacher` (the official
    # recipe); must be None with `init: random` (the model's own seeded N(0, random_std^2) entries).
    # Ignored on resume (the queue is in the checkpoint).
    queue_init: str | None = None
    # Fine-tuning: start from a trained pose model file's weights (`model_final.pt`, a shipped model, or a
    # training checkpoint), its confounder queue included; optimiser, schedule and data start afresh. The
    # file's model config must equal this run's. Excludes queue_init (the file carries the queue).
    # Ignored on resume (the weights are in the checkpoint).
    init_weights: str | None = None
    ddp_find_unused_parameters: bool = False  # set True only for ablations that leave modules unused

    def validate(self) -> None:
        if not self.sources:
            raise ConfigError("sources: at least one data source is needed")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"sources: names must be unique, got {names}")
        for key in ("iterations", "checkpoint_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.threads < 0:
            raise ConfigError("threads must be >= 0")
        if self.init_weights and self.queue_init:
            raise ConfigError("init_weights and queue_init are both set: a fine-tuning run takes its "
                              "confounder queue from the init_weights file; remove queue_init")

    @property
    def batch_size(self) -> int:
        """Samples per iteration and process, all sources together (official: 40)."""
        return sum(s.batch_size for s in self.sources)
