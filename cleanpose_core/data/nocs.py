"""Readers for NOCS-format data in the DPDN layout: CAMERA25, REAL275 and our synthetic data.

Layouts (architecture-facts §1.1); `source` picks one, and image prefixes come from a list file:
- camera: list root/camera/<split>_list.txt, prefixes under root/camera/, depth
  root/camera_full_depths/<prefix>_composed.png, models root/obj_models/camera_<split>.pkl, test pickles
  root/segmentation_results/CAMERA25, CAMERA25 intrinsics;
- real: list root/real/<split>_list.txt, prefixes under root/real/, depth <prefix>_depth.png (uint16 mm or the
  3-channel encoded variant), models root/obj_models/real_<split>.pkl, test pickles
  root/segmentation_results/REAL275, REAL275 intrinsics;
- synthetic (REAL-style files written directly under `cleanpose synth --out root`): list
  root/<split>_list.txt, prefixes under root/, depth <prefix>_depth.png, models root/obj_models/<split>.pkl,
  test pickles root/segmentation_results/<split>, intrinsics from root/<split>/config.yaml (else REAL275).

Per prefix: `_color.png`, `_mask.png` (ids in channel 2, 255 = background) and `_label.pkl` (class_ids 1..6,
instance_ids, model_list, bboxes (y1, x1, y2, x2), scales, sizes, rotations, translations). The metric box
size is `scales · sizes` for every source: REAL (and synthetic) `sizes` are extents / diagonal and `scales`
the diagonal; CAMERA `sizes` are the model's NOCS-space extents and `scales` the NOCS→camera similarity scale.

`NOCSTrainDataset` ([CP provider/nocs_dataset.py `TrainingDataset`], §1.2): `reset(epoch, seed)` draws the
epoch's images (`sampling.epoch_draw`), each item takes one random labelled instance of its image, completes
the depth, prepares the instance (crop, N points, colour augmentation, point noise), canonicalises the
rotation of the symmetric categories and computes `qo` and `pc_mask` from the model point cloud.
`NOCSTestDataset` (§1.4) reads segmentation-result pickles and yields every usable predicted instance of an
image as one `TestImage`.

Differences from the official readers:
- randomness is a function of (seed, epoch, index) only (`sampling`), so resume is exact;
- a bad sample (missing/unreadable file, no labelled instance, unknown model, too few valid pixels) is skipped
  and counted in `skipped` instead of an assert or a crash; the replacement image is drawn deterministically;
- a test image whose instances are all dropped (or whose files are unreadable) is returned with B = 0 instead
  of being replaced by a random other image, so its ground truth still counts as missed in the evaluation;
- the test pickles' `image_path` loses a leading 'data/' only when it has one (official: the first 5
  characters, whatever they are); the results folder is configurable (the official CleanPose code reads
  `results/nocs_results/...` while its README and AG-Pose use `segmentation_results/...`, our default).
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml

from cleanpose_core import NOCS_CATEGORIES, NOCS_SYMMETRIC_IDS
from cleanpose_core.geometry.camera import CAMERA25_INTRINSICS, REAL275_INTRINSICS, Intrinsics

from .augment import ColorAugmentConfig
from .depth_completion import fill_missing, fill_missing_in_columns
from .files import SampleError, read_color_rgb, read_depth_m, read_instance_mask, read_pickle
from .instance import get_bbox, prepare_instance
from .samples import SkipCounter, TestImage, build_training_sample, check_label, stack_instances
from .sampling import EpochDrawDataset, sample_rng

log = logging.getLogger(__name__)

__all__ = ["NOCSLayout", "NOCSTrainConfig", "NOCSTrainDataset", "NOCSTestConfig", "NOCSTestDataset",
           "read_image_list", "recorded_intrinsics"]

Source = Literal["camera", "real", "synthetic"]
# Per-instance label entries and their trailing shapes (DPDN `_label.pkl`).
LABEL_SHAPES = {"class_ids": (), "instance_ids": (), "model_list": (), "bboxes": (4,), "scales": (),
                "sizes": (3,), "rotations": (3, 3), "translations": (3,)}
NUM_NOCS_CATEGORIES = len(NOCS_CATEGORIES)


@dataclass(frozen=True)
class NOCSLayout:
    """Where one source's files live under a data root (see the module docstring)."""

    root: Path
    source: str
    split: str
    list_file: Path
    image_base: Path  # image prefix = image_base / <line of the list file>
    models_file: Path
    results_dir: Path
    intrinsics: Intrinsics

    @classmethod
    def resolve(cls, root: str | Path, source: str, split: str,
                intrinsics: tuple[float, float, float, float] | None = None) -> "NOCSLayout":
        root = Path(root)
        if source == "camera":
            base, models, results = root / "camera", root / "obj_models" / f"camera_{split}.pkl", "CAMERA25"
            default_K = Intrinsics(*CAMERA25_INTRINSICS)
        elif source == "real":
            base, models, results = root / "real", root / "obj_models" / f"real_{split}.pkl", "REAL275"
            default_K = Intrinsics(*REAL275_INTRINSICS)
        elif source == "synthetic":
            base, models, results = root, root / "obj_models" / f"{split}.pkl", split
            default_K = recorded_intrinsics(root, split)
        else:
            raise ValueError(f"source must be 'camera', 'real' or 'synthetic', got {source!r}")
        K = default_K if intrinsics is None else Intrinsics(*intrinsics, default_K.width, default_K.height)
        return cls(root, source, split, base / f"{split}_list.txt", base, models,
                   root / "segmentation_results" / results, K)

    def depth_path(self, prefix: Path) -> Path:
        """Depth file of an image prefix (a path under `image_base`)."""
        if self.source == "camera":
            try:
                rel = prefix.relative_to(self.image_base)
            except ValueError:
                raise SampleError("bad image path", f"{prefix} is not under {self.image_base}") from None
            return self.root / "camera_full_depths" / f"{rel}_composed.png"
        return prefix.with_name(prefix.name + "_depth.png")


def recorded_intrinsics(root: Path, split: str) -> Intrinsics:
    """Intrinsics recorded by `cleanpose synth` in root/<split>/config.yaml, else REAL275's."""
    path = root / split / "config.yaml"
    try:
        camera = (yaml.safe_load(path.read_text()) or {})["config"]["camera"]
        fx, fy, cx, cy = (float(v) for v in camera["intrinsics"])
        return Intrinsics(fx, fy, cx, cy, int(camera["width"]), int(camera["height"]))
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return Intrinsics(*REAL275_INTRINSICS)


def read_image_list(path: Path) -> list[str]:
    """Non-empty lines of a list file (image prefixes relative to the source's base folder)."""
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path} (is the data root right and preprocessed?)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@dataclass
class NOCSTrainConfig:
    """Options of one NOCS-format training source (the `dataset:` block of a training data source)."""

    # data root: holds camera/, real/, obj_models/ ...; for synthetic the `cleanpose synth --out` folder
    root: str
    source: Source = "real"  # file layout, depth source and intrinsics (module docstring)
    split: str = "train"  # list file <split>_list.txt and models file
    # images per epoch; official CAMERA 120000 (no replacement), REAL 40000; -1 = all
    num_img_per_epoch: int = -1
    sample_num: int = 1024  # N points per instance (official 1024; the lite model uses 512)
    image_size: int = 224  # S, RGB crop side in pixels
    # pc_mask threshold in NOCS units (official config 0.1; the reader's default was 0.2)
    outlier_th: float = 0.1
    fill_depth: bool = True  # IP-Basic depth completion first, as the official readers
    point_noise: bool = True  # clip(0.001 N(0, 1), +-0.005) m per coordinate
    color: ColorAugmentConfig = field(default_factory=ColorAugmentConfig)  # ColorJitter + rgb_add_noise
    intrinsics: tuple[float, float, float, float] | None = None  # (fx, fy, cx, cy) px; None = the source's
    symmetric_ids: tuple[int, ...] = NOCS_SYMMETRIC_IDS  # 0-based categories canonicalised about y
    min_valid_pixels: int = 0  # an instance needs more valid pixels than this (official 0)
    max_attempts: int = 50  # bad samples skipped in a row before giving up with an error naming the reasons
    # Keep every decoded, completed frame in memory after its first read (each is drawn ~80 times in the lite
    # recipe): about 2.4 MB per 640x480 frame and per loader process (5.8 GB for the 2,400 synthetic frames).
    cache_frames: bool = False

    def validate(self) -> None:
        if self.num_img_per_epoch == 0 or self.num_img_per_epoch < -1:
            raise ValueError(f"num_img_per_epoch must be -1 or >= 1, got {self.num_img_per_epoch}")
        if self.sample_num < 1 or self.image_size < 1:
            raise ValueError("sample_num and image_size must be >= 1")
        if self.outlier_th <= 0:
            raise ValueError(f"outlier_th must be > 0, got {self.outlier_th}")
        if self.min_valid_pixels < 0 or self.max_attempts < 1:
            raise ValueError("min_valid_pixels must be >= 0 and max_attempts >= 1")


class NOCSTrainDataset(EpochDrawDataset):
    """Training instances of one NOCS-format source; item = the official sample dict (see `samples`).

    `reset(epoch, seed)` fixes the epoch's images; item `index` then depends on (seed, epoch, index) only.
    `skipped` counts bad samples by reason (per process).
    """

    def __init__(self, cfg: NOCSTrainConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.layout = NOCSLayout.resolve(cfg.root, cfg.source, cfg.split, cfg.intrinsics)
        self.img_list = read_image_list(self.layout.list_file)
        if not self.img_list:
            raise ValueError(f"image list {self.layout.list_file} is empty")
        models = read_pickle(self.layout.models_file) if self.layout.models_file.is_file() else None
        if not isinstance(models, dict):
            raise FileNotFoundError(f"object models not found or not a dict: {self.layout.models_file}")
        self.models = {k: np.asarray(v, dtype=np.float32) for k, v in models.items()}
        self.skipped = SkipCounter(f"NOCS {cfg.source} {cfg.split}")
        self._frames: dict[int, tuple] = {}  # cache_frames: image -> (label, completed depth, mask, rgb)
        log.info(
            "NOCS %s/%s: %d images, %d models", cfg.source, cfg.split, len(self.img_list), len(self.models)
        )
        self.reset(0, 0)

    def num_images(self) -> int:
        return len(self.img_list)

    def image_name(self, image: int) -> str:
        return str(self.img_list[image])

    def load(self, image: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The sample of one random instance of image `image` (index into `img_list`); SampleError if
        unusable."""
        cfg, prefix = self.cfg, self.layout.image_base / self.img_list[image]
        cached = self._frames.get(image)
        if cached is None:
            gts = check_label(read_pickle(f"{prefix}_label.pkl"), LABEL_SHAPES, f"{prefix}_label.pkl")
            depth = read_depth_m(self.layout.depth_path(prefix))
            mask = read_instance_mask(f"{prefix}_mask.png")
            rgb = read_color_rgb(f"{prefix}_color.png")
            if cfg.cache_frames:  # the whole frame completed once, reused by every later draw
                depth = fill_missing(depth) if cfg.fill_depth else depth
                for array in (depth, mask, rgb):
                    array.setflags(write=False)  # shared by every later sample: an in-place edit must fail
                self._frames[image] = gts, depth, mask, rgb
        else:
            gts, depth, mask, rgb = cached

        idx = int(rng.integers(len(gts["instance_ids"])))
        if cfg.fill_depth and not cfg.cache_frames:
            # The sample reads depth only inside its crop window: filling those columns gives the same values
            # as the whole-frame completion for a quarter of its cost (issue 18, training throughput).
            try:
                window = get_bbox(np.asarray(gts["bboxes"][idx]).reshape(4), *depth.shape)
                depth = fill_missing_in_columns(depth, window.cmin, window.cmax)
            except (TypeError, ValueError):  # a malformed box: prepare_instance names it
                depth = fill_missing(depth)
        cat_id = int(gts["class_ids"][idx]) - 1
        if not 0 <= cat_id < NUM_NOCS_CATEGORIES:
            raise SampleError(
                "bad label", f"{prefix}: class id {cat_id + 1} outside 1..{NUM_NOCS_CATEGORIES}"
            )
        model = self.models.get(gts["model_list"][idx])
        if model is None:
            raise SampleError("unknown model", f"{prefix}: model {gts['model_list'][idx]!r} not in "
                                               f"{self.layout.models_file.name}")
        size = float(gts["scales"][idx]) * np.asarray(gts["sizes"][idx], dtype=np.float32)
        return build_training_sample(
            rgb,
            depth,
            mask == int(gts["instance_ids"][idx]),
            gts["bboxes"][idx],
            self.layout.intrinsics,
            rng,
            cat_id=cat_id,
            rotation=gts["rotations"][idx],
            translation=gts["translations"][idx],
            size=size,
            symmetric=cat_id in cfg.symmetric_ids,
            n_points=cfg.sample_num,
            image_size=cfg.image_size,
            color=cfg.color,
            add_point_noise=cfg.point_noise,
            min_valid_pixels=cfg.min_valid_pixels,
            model=model,
            outlier_th=cfg.outlier_th,
        )


@dataclass
class NOCSTestConfig:
    """Options of a NOCS-format test set read through segmentation-result pickles."""

    root: str  # data root, as for training
    source: Source = "real"  # layout, depth source and intrinsics
    split: str = "test"  # synthetic only: results folder segmentation_results/<split> and intrinsics
    results_dir: str | None = None  # folder of results_*.pkl; None = the source default (module docstring)
    sample_num: int = 1024  # N points per instance
    image_size: int = 224  # S
    fill_depth: bool = True
    intrinsics: tuple[float, float, float, float] | None = None
    min_valid_pixels: int = 16  # official: an instance needs more than 16 valid pixels
    seed: int = 0  # the point choice of image i uses sample_rng(seed, 0, i): runs are repeatable

    def validate(self) -> None:
        if self.sample_num < 1 or self.image_size < 1 or self.min_valid_pixels < 0:
            raise ValueError("sample_num and image_size must be >= 1, min_valid_pixels >= 0")


class NOCSTestDataset(torch.utils.data.Dataset):
    """Test images from segmentation-result pickles (sorted); item = `TestImage` (DataLoader
    batch_size=None)."""

    GT_KEYS = ("gt_class_ids", "gt_bboxes", "gt_RTs", "gt_scales", "gt_handle_visibility")
    PRED_KEYS = ("pred_class_ids", "pred_bboxes", "pred_scores")

    def __init__(self, cfg: NOCSTestConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.layout = NOCSLayout.resolve(cfg.root, cfg.source, cfg.split, cfg.intrinsics)
        self.results_dir = Path(cfg.results_dir) if cfg.results_dir else self.layout.results_dir
        self.result_files = sorted(
            glob.glob(os.path.join(glob.escape(str(self.results_dir)), "results_*.pkl"))
        )
        if not self.result_files:
            raise FileNotFoundError(f"no results_*.pkl in {self.results_dir}")
        self.skipped = SkipCounter(f"NOCS test {cfg.source}")

    def __len__(self) -> int:
        return len(self.result_files)

    def image_prefix(self, image_path: str) -> Path:
        """A pickle's `image_path` ('data/real/test/scene_1/0000') -> the prefix path under the data root."""
        rel = image_path[len("data/"):] if image_path.startswith("data/") else image_path
        return self.layout.root / rel

    def __getitem__(self, index: int) -> TestImage:
        path, result = self.result_files[index], {}
        try:
            data = read_pickle(path)
            if not isinstance(data, dict) or "image_path" not in data:
                raise SampleError("bad result file", f"{path}: expected a dict with image_path")
            result.update({k: np.asarray(data[k]) for k in self.GT_KEYS if k in data})
            result["image_path"] = data["image_path"]
            return self._load(path, data, result, sample_rng(self.cfg.seed, 0, index))
        except (SampleError, KeyError, ValueError, TypeError) as exc:
            error = (
                exc if isinstance(exc, SampleError) else SampleError("bad result file", f"{path}: {exc!r}")
            )
            self.skipped.add(error)
            result.update(pred_class_ids=np.zeros(0, np.int64), pred_bboxes=np.zeros((0, 4), np.int64),
                          pred_scores=np.zeros(0, np.float32))
            empty = stack_instances([], [], self.cfg.sample_num, self.cfg.image_size)
            return TestImage(path, empty, result, np.zeros(0, bool), error=str(error))

    def _load(self, path: str, data: dict, result: dict, rng: np.random.Generator) -> TestImage:
        cfg = self.cfg
        n = len(data["pred_class_ids"])
        masks = np.asarray(data["pred_masks"]).astype(bool)
        if masks.ndim != 3 or masks.shape[2] != n:
            raise SampleError("bad result file", f"{path}: pred_masks {masks.shape} for {n} predictions")
        prefix = self.image_prefix(data["image_path"])
        rgb = read_color_rgb(f"{prefix}_color.png")
        depth = read_depth_m(self.layout.depth_path(prefix))
        if cfg.fill_depth:
            depth = fill_missing(depth)

        kept, instances, cat_ids, dropped = np.zeros(n, bool), [], [], []
        for j in range(n):
            cat_id = int(data["pred_class_ids"][j]) - 1
            if not 0 <= cat_id < NUM_NOCS_CATEGORIES:
                dropped.append(f"instance {j}: class id {cat_id + 1} outside 1..{NUM_NOCS_CATEGORIES}")
                continue
            inst, reason = prepare_instance(rgb, depth, masks[:, :, j], self.layout.intrinsics, rng,
                                            bbox=data["pred_bboxes"][j], n_points=cfg.sample_num,
                                            image_size=cfg.image_size, min_valid_pixels=cfg.min_valid_pixels)
            if inst is None:
                dropped.append(f"instance {j}: {reason}")
                continue
            kept[j] = True
            instances.append(inst)
            cat_ids.append(cat_id)
        for key in self.PRED_KEYS:
            result[key] = np.asarray(data[key])[kept]
        return TestImage(
            path, stack_instances(instances, cat_ids, cfg.sample_num, cfg.image_size), result, kept, dropped
        )
