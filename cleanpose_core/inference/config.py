"""The Estimator's settings: one dataclass whose field metadata (description, bounds, choices, run-time) is
the single definition the CLI's flags and the ROS node's parameters are made from (issue 20).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from cleanpose_core.device import check_device_name
from cleanpose_core.inference.runtime import RUNTIMES
# The segmenter kinds that run on the frame itself: the factory's, offered here to the CLI and the ROS node.
from cleanpose_core.segmentation.factory import FRAME_SEGMENTERS

__all__ = ["EstimatorConfig", "FRAME_SEGMENTERS", "POSE_SOLVERS", "QUEUE_SAMPLING", "RETUNABLE", "SETTINGS",
           "setting"]

POSE_SOLVERS = ("keypoints", "regression")  # see EstimatorConfig.pose_solver
QUEUE_SAMPLING = ("stream", "per_frame")  # see EstimatorConfig.queue_sampling


def setting(default, description: str, bounds: tuple | None = None, runtime: bool = False,
            choices: tuple | None = None):
    """A settings field: its default, description, (low, high) bounds, allowed values and whether it may
    change while running (`Estimator.retune`). The CLI's flags and the ROS node's parameters of the same
    meaning are made from these fields, so each value is written once."""
    return field(default=default, metadata={"description": description, "bounds": bounds, "runtime": runtime,
                                            "choices": choices})


@dataclass
class EstimatorConfig:
    model_weights: str | None = setting(
        None, "Pose model file (model_final.pt of `cleanpose train`); unset = the shipped lite model")
    pose_backend: str = setting(
        "cleanpose", "Pose estimator: cleanpose (the network) or box_fit (non-learned baseline)",
        choices=("cleanpose", "box_fit"))
    # Validation split (its own shape pool; docs/results/validation_choices_s7.json), ground-truth masks:
    # 10°5cm 58.9 with the keypoint fit against 53.7 (65.0 against 60.9 ranked by pose confidence).
    pose_solver: str = setting(
        "keypoints", "How the network's pose is read out: keypoints (similarity fit of the predicted "
        "keypoint NOCS to the predicted keypoints; size from the head) or regression (the pose head, as the "
        "official code)", choices=POSE_SOLVERS)
    point_samples: int = setting(
        1, "Point samples per object (test-time ensemble): each draws its own points from the mask, all run "
        "in the frame's one batch, their keypoint correspondences pool into one fit and their head outputs "
        "are averaged; the pose network's cost grows with it", (1, 16))
    device: str = setting(
        "auto", "Compute device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N")
    runtime: str = setting(
        "auto", "CPU runtime of the dense network parts (inference/runtime.py): eager (PyTorch float32, the "
        "reference), bf16 (bfloat16 autocast; CPUs with AMX / AVX512-BF16), onnx (ONNX Runtime float32), "
        "int8 (onnx with int8 convolutions read from `cleanpose export`'s files, float32 without them) or "
        "auto (int8 when onnxruntime is installed, else bf16 where the CPU has it, else eager)",
        choices=RUNTIMES)
    segmenter: str = setting(
        "maskrcnn", "Instance segmentation: maskrcnn (learned, names each object) or depth_tabletop (plane + "
        "regions above it, named by the point classifier; uncluttered tables, no trained segmenter); through "
        "the API also ground_truth, or external (masks with every frame)")
    segmenter_weights: str | None = setting(
        None, "Mask R-CNN checkpoint (.pt); unset = the shipped segmenter")
    # What a robot acts on, so precision first. Validation split (docs/results/validation_choices_s7.json;
    # correct = box IoU >= 0.5 with an object of the category; shipped segmenter): precision / recall
    # 0.95 / 0.51 at 0.4, 0.87 / 0.61 at 0.3, 0.79 / 0.67 at 0.2. Benchmarks rank by score and use 0.1.
    score_threshold: float = setting(
        0.4, "Minimum detection score (segmenter score re-weighted by the point classifier)", (0.0, 1.0),
        runtime=True)
    max_objects: int = setting(
        10, "Maximum objects per frame (highest scores kept; bounds the pose batch)", (1, 100), runtime=True)
    min_mask_area: int = setting(100, "Minimum mask area in pixels", (1, 1_000_000), runtime=True)
    min_points: int = setting(32, "Minimum valid depth pixels inside a mask", (4, 1_000_000), runtime=True)
    max_mask_overlap: float = setting(
        0.7, "Drop a mask lying more than this fraction inside higher-scoring ones of its category "
        "(duplicates); 1 = off")
    category_classifier: str | None = setting(
        None, "Point-cloud classifier (.pt of `cleanpose train-classifier`) that re-scores Mask R-CNN "
        "detections and names depth-tabletop ones; unset = the shipped one")
    # Validation split, full pipeline (shipped segmenter), IoU25 / IoU50 / 10°5cm: 76.9 / 67.8 / 50.6 at
    # w = 0, 81.8 / 72.9 / 53.4 at 0.3, 81.8 / 72.1 / 53.7 at 0.5, 81.2 / 71.2 / 55.4 at 0.7.
    category_weight: float = setting(
        0.5, "Weight w of the point classifier in the detection score s^(1-w) q^w; 0 = off (raising it from "
        "0 at run time needs a restart)", (0.0, 0.95), runtime=True)
    keep_masks: bool = False       # attach each object's mask and its points to its Detection
    mean_sizes: str | None = None  # box_fit: JSON {category: [x, y, z] metres}; None = shipped
    queue_seed: int = 0            # seed of test-time confounder-queue sampling (and of each frame's points)
    # stream: the queue sampler is seeded once and draws fresh entries at every forward (official test.py:
    # numpy seeded once with 42); per_frame: re-seeded before every forward, a frame's result independent of
    # the frames before it. Seed-7 split of the test pool (before the validation pool existed), shipped model,
    # gt masks, IoU50 / 10°5cm / 5°2cm: stream 92.0 / 71.3 / 40.4, per_frame 92.3 / 71.0 / 42.1 (queue_seed
    # 0); stream with queue_seed 1 92.6 / 72.4 / 42.8: seed noise.
    queue_sampling: Literal["stream", "per_frame"] = "stream"
    n_points: int | None = None    # points per object; None = what the model was trained with
    fill_depth: bool = True        # IP-Basic hole filling of the depth, as the official test pipeline does
    # Re-raise internal errors instead of returning them as a reason (tests: a handled bad input and a crash
    # must look different).
    strict: bool = False

    def validate(self) -> None:
        for f in fields(self):
            meta, value = f.metadata, getattr(self, f.name)
            bounds, choices = meta.get("bounds"), meta.get("choices")
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"{f.name} must be in [{bounds[0]}, {bounds[1]}], got {value}")
            if choices is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {list(choices)}, got {value!r}")
        check_device_name(self.device)
        if self.queue_sampling not in QUEUE_SAMPLING:
            raise ValueError(f"queue_sampling must be one of {QUEUE_SAMPLING}, got {self.queue_sampling!r}")
        if self.segmenter == "depth_tabletop" and self.category_weight == 0.0:
            raise ValueError("segmenter depth_tabletop has no categories of its own: the point classifier "
                             "names its objects, so category_weight must be > 0")


SETTINGS = {f.name: f for f in fields(EstimatorConfig)}
# What `Estimator.retune` takes.
RETUNABLE = tuple(name for name, f in SETTINGS.items() if f.metadata.get("runtime"))
