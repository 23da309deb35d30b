"""Teacher encoders for distillation and queue initialisation: a small ULIP-style stand-in pre-training.

CleanPose distils from ULIP-2's PointBERT (a 3D foundation model trained on millions of shapes with images and
text) and initialises its confounder queue with ULIP-2's PointNet++ SSG features. We cannot train ULIP-2 here,
so this module pre-trains the same two architectures on our synthetic shapes with the simplest signal that
gives category-aware features: **category classification with a linear head** on object point clouds. The head
is thrown away; the encoder is frozen and saved. Users who have the official ULIP-2 checkpoints load them
instead (`convert_ulip2`), and the file written is the same kind either way.

Training points (`ModelPointClouds`): the `obj_models/*train*.pkl` point clouds (NOCS space, unit bbox
diagonal) of every training instance, scaled to a metric size seen in the labels, rotated as objects appear to
a camera (any yaw, upright in the camera's y-down frame, seen from 0-80° elevation), cut to the part facing
the camera (the points nearest it along a jittered +z, as a depth sensor sees them), noised by 1 mm, and
centred on their mean: the distribution the teacher sees during KD (centred observed points in metres, §2.7 of
architecture-facts). ULIP instead trains on complete, unit-sphere-normalised shapes; we follow the KD-time
input because the teacher is never adapted afterwards. Models are split by id into train/validation so the
reported accuracy is on unseen shapes.

Output file (`torch.save`, loads with ``weights_only=True``): ``{"format": io.TEACHER_FORMAT, "arch",
"config" (the encoder's config dict), "state_dict" (encoder only), "categories", "metrics", "source"}``.
"""

from __future__ import annotations

import glob
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import nn

from .. import NOCS_CATEGORIES
from ..config import ConfigError, from_dict, to_dict
from ..io import TEACHER_FORMAT, read_artefact, save_artefact
from .classification import train_classification

__all__ = ["TeacherTrainConfig", "ModelPointClouds", "build_teacher_encoder", "train_teacher", "load_teacher",
           "save_teacher", "convert_ulip2"]
Arch = Literal["pointbert", "pointnet2_ssg"]


@dataclass
class TeacherTrainConfig:
    """Pre-training of one teacher encoder by category classification."""

    arch: Arch = "pointbert"
    encoder: dict[str, Any] = field(default_factory=dict)  # the encoder's own config (PointBERTConfig, ...)
    points: int = 1024  # points per sample, as the student sees
    batch_size: int = 32
    iterations: int = 2000
    lr: float = 1e-3  # AdamW, cosine decay to 1% over `iterations`
    weight_decay: float = 0.05
    # Camera elevation above the table, degrees: the object's up axis tilts towards the camera by this much
    # (the synthetic scenes use 25-75°; REAL275 is similar). Yaw is uniform over 360°.
    elevation_deg: tuple[float, float] = (0.0, 80.0)
    visible_fraction: tuple[float, float] = (0.4, 0.7)  # share of the model points kept by the view cut
    noise_m: float = 0.001  # Gaussian point noise, metres
    val_fraction: float = 0.2  # share of model ids held out for validation accuracy
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def validate(self) -> None:
        if self.points < 32 or self.batch_size < 2 or self.iterations < 1:
            raise ValueError("points >= 32, batch_size >= 2 and iterations >= 1 are required")
        if not 0.0 <= self.elevation_deg[0] <= self.elevation_deg[1] <= 90.0:
            raise ValueError(f"elevation_deg needs 0 <= lo <= hi <= 90, got {self.elevation_deg}")
        lo, hi = self.visible_fraction
        if not 0.05 <= lo <= hi <= 1.0:
            raise ValueError(f"visible_fraction needs 0.05 <= lo <= hi <= 1, got {self.visible_fraction}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")


# ----------------------------------------------------------------------------------------------------- data
class ModelPointClouds(torch.utils.data.Dataset):
    """Object point clouds of a DPDN-layout folder with their category, as camera-like centred partial views.

    Args:
        root: dataset root holding `obj_models/*train*.pkl` and `[*/]train/**/*_label.pkl`.
        cfg: sampling options.
        split: 'train' or 'val' (model ids split deterministically by `cfg.seed`).

    Items: ``{"points": (N, 3) float32 metres, centred; "label": int 0-based category}``.
    """

    def __init__(self, root: str | Path, cfg: TeacherTrainConfig, split: Literal["train", "val"]) -> None:
        root = Path(root)
        clouds: dict[str, np.ndarray] = {}
        for pkl in sorted(glob.glob(str(root / "obj_models" / "*train*.pkl"))):
            with open(pkl, "rb") as f:
                clouds.update({str(k): np.asarray(v, dtype=np.float32) for k, v in pickle.load(f).items()})
        if not clouds:
            raise FileNotFoundError(f"no obj_models/*train*.pkl point clouds under {root}")
        category: dict[str, int] = {}
        scales: dict[str, list[float]] = {}
        # DPDN: <root>/{camera,real}/train/...; our synthetic engine: <root>/train/... (one level up)
        labels = sorted({p for pattern in ("train/**/*_label.pkl", "*/train/**/*_label.pkl")
                         for p in glob.glob(str(root / pattern), recursive=True)})
        for path in labels:
            with open(path, "rb") as f:
                gts = pickle.load(f)
            for cid, mid, scale in zip(gts["class_ids"], gts["model_list"], np.atleast_1d(gts["scales"])):
                category[str(mid)] = int(cid) - 1
                scales.setdefault(str(mid), []).append(float(scale))
        ids = sorted(set(clouds) & set(category))
        if not ids:
            raise FileNotFoundError(f"no model of {root}/obj_models is named in a [*/]train/**/*_label.pkl")
        perm = np.random.default_rng(cfg.seed).permutation(len(ids))
        n_val = int(round(cfg.val_fraction * len(ids)))
        chosen = perm[:n_val] if split == "val" else perm[n_val:]
        self.ids = [ids[i] for i in sorted(chosen)]
        self.clouds = [clouds[i] for i in self.ids]
        self.labels = [category[i] for i in self.ids]
        self.scales = [scales[i] for i in self.ids]
        self.cfg = cfg

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        cfg, rng = self.cfg, np.random  # seeded per item by the caller for reproducibility
        pts = self.clouds[index] * rng.choice(self.scales[index])  # NOCS (unit diagonal) -> metres
        # Yaw about the object's up axis, then Rx(pi + e): object up (0, 1, 0) -> (0, -cos e, -sin e), the
        # world's up seen by a camera (y down, z forward) looking down at elevation e.
        elevation = math.radians(rng.uniform(*cfg.elevation_deg))
        rot = Rotation.from_euler("yx", [rng.uniform(-math.pi, math.pi), math.pi + elevation])
        pts = rot.apply(pts)
        view = np.array([0.0, 0.0, 1.0]) + 0.3 * rng.normal(size=3)  # the camera looks along +z
        view /= np.linalg.norm(view)
        keep = max(8, int(len(pts) * rng.uniform(*cfg.visible_fraction)))
        visible = pts[np.argsort(pts @ view)[:keep]]  # the side facing a camera placed along -view
        choice = rng.choice(len(visible), cfg.points, replace=len(visible) < cfg.points)
        sample = visible[choice] + rng.normal(0.0, cfg.noise_m, (cfg.points, 3))
        sample -= sample.mean(0)
        return {"points": torch.from_numpy(sample.astype(np.float32)), "label": self.labels[index]}


# ---------------------------------------------------------------------------------------------- encoders
def build_teacher_encoder(arch: Arch, options: dict[str, Any]) -> tuple[nn.Module, int, dict[str, Any]]:
    """The teacher encoder for `arch`, its output width, and its resolved config dict.

    `options` are the keys of the architecture's config dataclass (`PointBERTConfig`, `PointNet2SSGConfig`);
    unknown keys are errors.
    """
    from ..models.teachers import pointbert, pointnet2_ssg

    if arch == "pointbert":
        cfg = from_dict(pointbert.PointBERTConfig, options, "encoder")
        encoder: nn.Module = pointbert.PointBERT(cfg)
    elif arch == "pointnet2_ssg":
        cfg = from_dict(pointnet2_ssg.PointNet2SSGConfig, options, "encoder")
        encoder = pointnet2_ssg.PointNet2SSG(cfg)
    else:
        raise ConfigError(f"arch: unknown teacher architecture {arch!r}; use 'pointbert' or 'pointnet2_ssg'")
    return encoder, int(encoder.out_dim), to_dict(cfg)


def save_teacher(path: str | Path, arch: Arch, config: dict[str, Any], encoder: nn.Module,
                 metrics: dict[str, float], source: str) -> Path:
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return save_artefact(path, TEACHER_FORMAT, arch=arch, config=config, state_dict=state,
                         categories=list(NOCS_CATEGORIES), metrics=metrics, source=source)


def load_teacher(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A saved teacher encoder, frozen and in eval mode, and the file's metadata (without the weights).

    The weights go through the architecture's own loader (`models/teachers/*.load_teacher_weights`), the one
    the network uses too.

    Raises:
        WeightsError: the file is unreadable, not a teacher file, or does not fit its architecture
            (WeightsNotFoundError, also a FileNotFoundError, when it is missing).
    """
    from ..models.teachers import pointbert, pointnet2_ssg

    blob = read_artefact(path, TEACHER_FORMAT)
    encoder, _, _ = build_teacher_encoder(blob["arch"], blob["config"])
    arch_module = pointbert if blob["arch"] == "pointbert" else pointnet2_ssg
    arch_module.load_teacher_weights(encoder, path)
    encoder.requires_grad_(False).eval().to(device)
    return encoder, {k: v for k, v in blob.items() if k != "state_dict"}


def convert_ulip2(arch: Arch, ulip_checkpoint: str | Path, out: str | Path,
                  options: dict[str, Any] | None = None) -> Path:
    """Store the point encoder of an official ULIP-2 checkpoint as a teacher file.

    `options` configure the architecture (default: the ULIP-2 sizes, PointBERT 384 x 12 / PN++ SSG 256-d).
    """
    encoder, _, config = build_teacher_encoder(arch, options or {})
    from ..models.teachers import pointbert, pointnet2_ssg

    loader = pointbert.load_teacher_weights if arch == "pointbert" else pointnet2_ssg.load_teacher_weights
    loader(encoder, ulip_checkpoint)
    return save_teacher(out, arch, config, encoder, {}, f"ULIP-2 {Path(ulip_checkpoint).name}")


# --------------------------------------------------------------------------------------------- training
# The loop is `classification.train_classification`, shared with the point classifier.
def _batches(dataset: ModelPointClouds, batch_size: int, gen: np.random.Generator, step_seed: int):
    """One random batch (points (B, N, 3), labels (B,)); item randomness seeded from `step_seed`."""
    idx = gen.integers(0, len(dataset), batch_size)
    state = np.random.get_state()
    np.random.seed(step_seed % (1 << 32))
    try:
        items = [dataset[int(i)] for i in idx]
    finally:
        np.random.set_state(state)
    return torch.stack([it["points"] for it in items]), torch.tensor([it["label"] for it in items])


@torch.no_grad()
def _accuracy(encoder: nn.Module, head: nn.Module, dataset: ModelPointClouds, cfg: TeacherTrainConfig,
              device: torch.device, draws: int = 4) -> float:
    """Validation accuracy over `draws` random views of every held-out model."""
    encoder.eval()
    head.eval()
    correct = total = 0
    state = np.random.get_state()
    np.random.seed(cfg.seed + 1)
    try:
        for _ in range(draws):
            for start in range(0, len(dataset), cfg.batch_size):
                items = [dataset[i] for i in range(start, min(start + cfg.batch_size, len(dataset)))]
                pts = torch.stack([it["points"] for it in items]).to(device)
                labels = torch.tensor([it["label"] for it in items], device=device)
                correct += int((head(encoder(pts)).argmax(1) == labels).sum())
                total += len(items)
    finally:
        np.random.set_state(state)
    encoder.train()
    head.train()
    return 100.0 * correct / max(total, 1)


def train_teacher(cfg: TeacherTrainConfig, data_root: str | Path, out: str | Path, *,
                  progress: bool = True) -> dict[str, float]:
    """Pre-train a teacher encoder by category classification and save it frozen to `out`.

    Returns metrics: final training loss, training and validation accuracy (percent), wall time (s).
    """
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    torch.manual_seed(cfg.seed)
    train_set = ModelPointClouds(data_root, cfg, "train")
    val_set = ModelPointClouds(data_root, cfg, "val") if cfg.val_fraction > 0 else None
    encoder, width, enc_cfg = build_teacher_encoder(cfg.arch, cfg.encoder)
    head = nn.Linear(width, len(NOCS_CATEGORIES))  # linear probe-style head, discarded after training
    gen = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    fit = train_classification(
        nn.Sequential(encoder, head).to(device),
        lambda it: _batches(train_set, cfg.batch_size, gen, cfg.seed * 1_000_003 + it),
        iterations=cfg.iterations, lr=cfg.lr, weight_decay=cfg.weight_decay, device=device,
        name=f"teacher {cfg.arch}", progress=progress)
    metrics = {"train_loss": fit["loss"], "train_accuracy": fit["accuracy"],
               "seconds": time.perf_counter() - t0, "train_models": float(len(train_set))}
    if val_set is not None and len(val_set):
        metrics["val_accuracy"] = _accuracy(encoder, head, val_set, cfg, device)
        metrics["val_models"] = float(len(val_set))
    encoder.requires_grad_(False).eval()
    save_teacher(out, cfg.arch, enc_cfg, encoder, metrics,
                 f"category classification on {Path(data_root)} ({cfg.iterations} it, seed {cfg.seed})")
    return metrics
