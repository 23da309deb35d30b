"""HouseCat6D readers: training instances and ground-truth-mask test images.

Layout (architecture-facts §1.5): `root/scene*/` (training) and `root/test_scene*/` (test), each with
- `rgb/<name>.png` colour (BGR on disk), `depth/<name>.png` uint16 mm, `instance/<name>.png` instance ids in
  channel 2, `labels/<name>_label.pkl` with `class_ids` (1..10), `instance_ids`, `bboxes` (y1, x1, y2, x2),
  `rotations` (n, 3, 3), `translations` (n, 3) m and `gt_scales` (n, 3) absolute metric box sizes;
- `intrinsics.txt` (3 × 3 camera matrix) and `meta.txt` per scene. Images are 852 × 1096.
Category order (1-based): box, bottle, can, cup, remote, teapot, cutlery, glass, shoe, tube; bottle, can and
glass (0-based 1, 2, 7) are canonicalised about y in training. There are no model point clouds, so samples
have no `model`, `qo` or `pc_mask` (the reconstruction loss then uses every point: `recon_obj_aware: false`).

Training ([CP provider/housecat6d_dataset.py `HouseCat6DTrainingDataset`]): every image of every training
scene, shuffled by `reset(epoch, seed)`, one random instance per image, the same per-instance pipeline and
augmentation as NOCS (`samples.build_training_sample`), crop windows bounded by the 852 × 1096 image. Test
(`HouseCat6DTestDataset`): ground-truth masks and boxes, predicted class = ground-truth class, score 1, and
result fields gt_RTs = [‖s‖·R | t], gt_scales = s / ‖s‖.

Differences from the official readers:
- an instance without valid pixels is skipped and counted (`skipped`) and another image drawn
  deterministically; the official training reader returns None and trips an assert;
- randomness depends on (seed, epoch, index) only (`sampling`);
- at test time an instance needs more than 16 valid pixels inside its crop window (official: in the whole
image,
  then it samples from the window, which fails when the box misses the mask); images keep their place even
  when every instance is dropped; `gt_handle_visibility` is all ones (HouseCat6D has no mug-handle flag).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cleanpose_core import HOUSECAT6D_CATEGORIES, HOUSECAT6D_SYMMETRIC_IDS
from cleanpose_core.geometry.camera import Intrinsics

from .augment import ColorAugmentConfig
from .depth_completion import fill_missing
from .files import SampleError, read_color_rgb, read_depth_m, read_instance_mask, read_pickle
from .instance import prepare_instance
from .samples import SkipCounter, TestImage, build_training_sample, check_label, stack_instances
from .sampling import EpochDrawDataset, sample_rng

log = logging.getLogger(__name__)

__all__ = ["HouseCat6DTrainConfig", "HouseCat6DTrainDataset", "HouseCat6DTestConfig", "HouseCat6DTestDataset",
           "list_images", "read_scene_intrinsics"]

# Per-instance label entries and their trailing shapes.
LABEL_SHAPES = {
    "class_ids": (),
    "instance_ids": (),
    "bboxes": (4,),
    "rotations": (3, 3),
    "translations": (3,),
    "gt_scales": (3,),
}
NUM_CATEGORIES = len(HOUSECAT6D_CATEGORIES)


def list_images(root: str | Path, scenes: str) -> list[Path]:
    """Sorted `rgb/*.png` of every scene folder matching the glob `scenes` under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"HouseCat6D root not found: {root}")
    scene_dirs = [s for s in sorted(root.glob(scenes)) if s.is_dir()]
    images = sorted(p for scene in scene_dirs for p in (scene / "rgb").glob("*.png"))
    if not images:
        raise FileNotFoundError(f"no images in {root}/{scenes}/rgb/*.png")
    return images


def read_scene_intrinsics(scene: Path, width: int, height: int) -> Intrinsics:
    """`scene/intrinsics.txt` (3 × 3, whitespace-separated) -> Intrinsics; SampleError when unusable."""
    path = scene / "intrinsics.txt"
    try:
        K = np.loadtxt(path).reshape(3, 3)
    except (OSError, ValueError) as exc:
        raise SampleError("bad intrinsics", f"{path}: {exc}") from exc
    intrinsics = Intrinsics.from_matrix(K, width, height)
    if intrinsics.problem():
        raise SampleError("bad intrinsics", f"{path}: {intrinsics.problem()}")
    return intrinsics


def _paths(rgb_path: Path) -> dict[str, Path]:
    scene, name = rgb_path.parent.parent, rgb_path.stem
    return {"depth": scene / "depth" / rgb_path.name, "instance": scene / "instance" / rgb_path.name,
            "label": scene / "labels" / f"{name}_label.pkl", "scene": scene}


def _read_label(path: Path) -> dict[str, Any]:
    return check_label(read_pickle(path), LABEL_SHAPES, str(path))


def _read_frame(rgb_path: Path, fill_depth: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, Intrinsics]:
    """(rgb (H, W, 3) uint8, depth (H, W) m, instance ids (H, W) uint8, intrinsics) of one image."""
    paths = _paths(rgb_path)
    rgb = read_color_rgb(rgb_path)
    depth = read_depth_m(paths["depth"])
    if fill_depth:
        depth = fill_missing(depth)
    ids = read_instance_mask(paths["instance"])
    h, w = depth.shape
    return rgb, depth, ids, read_scene_intrinsics(paths["scene"], w, h)


@dataclass
class HouseCat6DTrainConfig:
    """Options of the HouseCat6D training source (the `dataset:` block of its data source)."""

    root: str  # the HouseCat6D folder holding scene*/ and test_scene*/
    scenes: str = "scene*"  # glob of training scene folders (official: every scene*)
    num_img_per_epoch: int = -1  # -1 = every image once per epoch, shuffled (official)
    sample_num: int = 1024  # N points per instance
    image_size: int = 224  # S
    fill_depth: bool = True
    point_noise: bool = True
    color: ColorAugmentConfig = field(default_factory=ColorAugmentConfig)
    symmetric_ids: tuple[int, ...] = HOUSECAT6D_SYMMETRIC_IDS  # 0-based: bottle, can, glass
    min_valid_pixels: int = 0
    max_attempts: int = 50

    def validate(self) -> None:
        if self.num_img_per_epoch == 0 or self.num_img_per_epoch < -1:
            raise ValueError(f"num_img_per_epoch must be -1 or >= 1, got {self.num_img_per_epoch}")
        if self.sample_num < 1 or self.image_size < 1:
            raise ValueError("sample_num and image_size must be >= 1")
        if self.min_valid_pixels < 0 or self.max_attempts < 1:
            raise ValueError("min_valid_pixels must be >= 0 and max_attempts >= 1")


class HouseCat6DTrainDataset(EpochDrawDataset):
    """HouseCat6D training instances; item = pts, rgb, choose, category_label,
    translation/rotation/size_label."""

    def __init__(self, cfg: HouseCat6DTrainConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.images = list_images(cfg.root, cfg.scenes)
        self.skipped = SkipCounter("HouseCat6D train")
        log.info("HouseCat6D: %d training images", len(self.images))
        self.reset(0, 0)

    def num_images(self) -> int:
        return len(self.images)

    def image_name(self, image: int) -> str:
        return str(self.images[image])

    def load(self, image: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The sample of one random instance of image `image`; SampleError when unusable."""
        cfg, rgb_path = self.cfg, self.images[image]
        gts = _read_label(_paths(rgb_path)["label"])
        rgb, depth, ids, K = _read_frame(rgb_path, cfg.fill_depth)
        idx = int(rng.integers(len(gts["instance_ids"])))
        cat_id = int(gts["class_ids"][idx]) - 1
        if not 0 <= cat_id < NUM_CATEGORIES:
            raise SampleError("bad label", f"{rgb_path}: class id {cat_id + 1} outside 1..{NUM_CATEGORIES}")
        return build_training_sample(
            rgb, depth, ids == int(gts["instance_ids"][idx]), gts["bboxes"][idx], K, rng, cat_id=cat_id,
            rotation=gts["rotations"][idx], translation=gts["translations"][idx], size=gts["gt_scales"][idx],
            symmetric=cat_id in cfg.symmetric_ids, n_points=cfg.sample_num, image_size=cfg.image_size,
            color=cfg.color, add_point_noise=cfg.point_noise, min_valid_pixels=cfg.min_valid_pixels)


@dataclass
class HouseCat6DTestConfig:
    """Options of the HouseCat6D test set (ground-truth masks)."""

    root: str
    scenes: str = "test_scene*"  # glob of test scene folders
    sample_num: int = 1024
    image_size: int = 224
    fill_depth: bool = True
    min_valid_pixels: int = 16  # an instance needs more valid pixels than this
    seed: int = 0  # the point choice of image i uses sample_rng(seed, 0, i)

    def validate(self) -> None:
        if self.sample_num < 1 or self.image_size < 1 or self.min_valid_pixels < 0:
            raise ValueError("sample_num and image_size must be >= 1, min_valid_pixels >= 0")


class HouseCat6DTestDataset(torch.utils.data.Dataset):
    """HouseCat6D test images with ground-truth masks; item = `TestImage` (DataLoader batch_size=None)."""

    def __init__(self, cfg: HouseCat6DTestConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.images = list_images(cfg.root, cfg.scenes)
        self.skipped = SkipCounter("HouseCat6D test")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> TestImage:
        cfg, rgb_path = self.cfg, self.images[index]
        result: dict[str, Any] = {"image_path": str(rgb_path)}
        try:
            gts = _read_label(_paths(rgb_path)["label"])
            result.update(_gt_fields(gts))
            rgb, depth, ids, K = _read_frame(rgb_path, cfg.fill_depth)
        except SampleError as exc:
            self.skipped.add(exc)
            result.update(pred_class_ids=np.zeros(0, np.int64), pred_bboxes=np.zeros((0, 4), np.int64),
                          pred_scores=np.zeros(0, np.float32))
            return TestImage(str(rgb_path), stack_instances([], [], cfg.sample_num, cfg.image_size), result,
                             np.zeros(0, bool), error=str(exc))

        rng = sample_rng(cfg.seed, 0, index)
        n = len(gts["instance_ids"])
        kept, instances, cat_ids, dropped = np.zeros(n, bool), [], [], []
        for j in range(n):
            cat_id = int(gts["class_ids"][j]) - 1
            if not 0 <= cat_id < NUM_CATEGORIES:
                dropped.append(f"instance {j}: class id {cat_id + 1} outside 1..{NUM_CATEGORIES}")
                continue
            inst, reason = prepare_instance(rgb, depth, ids == int(gts["instance_ids"][j]), K, rng,
                                            bbox=gts["bboxes"][j], n_points=cfg.sample_num,
                                            image_size=cfg.image_size, min_valid_pixels=cfg.min_valid_pixels)
            if inst is None:
                dropped.append(f"instance {j}: {reason}")
                continue
            kept[j] = True
            instances.append(inst)
            cat_ids.append(cat_id)
        result.update(pred_class_ids=np.asarray(gts["class_ids"], np.int64)[kept],
                      pred_bboxes=gts["bboxes"].astype(np.int64)[kept],
                      pred_scores=np.ones(int(kept.sum()), np.float32))
        return TestImage(str(rgb_path), stack_instances(instances, cat_ids, cfg.sample_num, cfg.image_size),
                         result, kept, dropped)


def _gt_fields(gts: dict[str, Any]) -> dict[str, np.ndarray]:
    """Result-file ground truth from a HouseCat6D label: RTs = [‖s‖·R | t], scales = s / ‖s‖ (official
    test)."""
    n = len(gts["instance_ids"])
    sizes = np.asarray(gts["gt_scales"], dtype=np.float64).reshape(n, 3)
    diag = np.linalg.norm(sizes, axis=1)
    if np.any(diag <= 0):
        raise SampleError("bad label", "gt_scales must be non-zero box sizes")
    RTs = np.tile(np.eye(4), (n, 1, 1))
    RTs[:, :3, :3] = np.asarray(gts["rotations"], dtype=np.float64).reshape(n, 3, 3) * diag[:, None, None]
    RTs[:, :3, 3] = np.asarray(gts["translations"], dtype=np.float64).reshape(n, 3)
    return {"gt_class_ids": np.asarray(gts["class_ids"], np.int64), "gt_bboxes": np.asarray(gts["bboxes"]),
            "gt_RTs": RTs, "gt_scales": sizes / diag[:, None], "gt_handle_visibility": np.ones(n, np.int64)}
