"""The CleanPose network: AG-Pose's keypoint pipeline + a causal front-door module + residual distillation.

Paper: "CleanPose: Category-Level Object Pose Estimation via Causal Learning and Knowledge Distillation".
Official code: `Net` in [CP model/Net.py]; architecture-facts §1.3, §2 (module by module), §2.11 (test time).

One training forward, in the official order (§2):
 1. draw N_s confounder samples per category from the queue (no grad);
 2. centre the points on their mean c;
 3. image features (DINOv2, frozen) gathered at the chosen pixels and projected to C2;
 4. augment the centred points: p <- ((p - dt) / ds) dr (row vectors; §1.3), drawn from `augment_generator`;
 5. PointNet++ MSG -> per-point geometry features (B, C1, N);
 6. IAKD on [geometry ; image] -> heatmap (B, K, N), keypoints = heatmap @ points, features = heatmap @ F;
 7. GAFA (keypoints detached); 8. front-door encoder; 9. reconstructor, NOCS predictor, pose/size head
    (NOCS detached); predictions mapped back to the camera frame: R = dr r, t = dt + ds (dr t) + c, s = ds s,
    keypoints/reconstruction p <- ds (dr p) + dt + c;
10. the FIFO entries (keypoint mean of the front-door output, detached) are *returned* as `queue_feat`;
11. KD: student embedding of the pooled geometry feature, and the teacher feature of the same (centred,
    augmented) points, or `batch["teacher_feat"]` when the caller supplies cached features.

Eval mode: no augmentation, no queue update, no KD and no teacher; t = t + c.

Differences from the official code and why:
- `forward` never changes the queue: the training step pushes `outputs["queue_feat"]` after the optimiser
  step (train/engine.py). This is equivalent, since this forward's samples are drawn before the push, and
  keeps forward free of side effects (DDP, autocast, re-runs);
- explicit, seedable generators for augmentation and queue sampling (`generators`), so runs and test-time
  results are reproducible;
- the image projection is applied to the gathered pixels only (see image_backbone.py); GAFA's relative
  position MLP and the NOCS head skip work whose result is discarded (see aggregation.py, heads.py);
- the teacher can be kept in eval mode (`kd.teacher_train_mode: false`); the official code runs it in train
  mode (BatchNorm batch statistics, DropPath) because `model.train()` reaches it;
- test-time keypoints `pred_kpt_3d` are returned in the camera frame (+ c), like the training ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .aggregation import GAFA, GAFAConfig
from .confounder_queue import ConfounderQueue, QueueConfig
from .distillation import ResidualKDHead
from .front_door import FrontDoorConfig, FrontDoorEncoder
from .heads import NOCSConfig, NOCSPredictor, PoseSizeEstimator, Reconstructor
from .image_backbone import ImageBackboneConfig, build_image_backbone, gather_pixel_features
from .keypoints import IAKD, IAKDConfig
from .losses import LossConfig
from .pointnet2 import PointNet2MSG, PointNet2MSGConfig
from .teachers.pointbert import PointBERT, PointBERTConfig, load_teacher_weights

__all__ = ["AugmentConfig", "CausalConfig", "KDConfig", "CleanPoseConfig", "CleanPose", "build_model",
           "euler_xyz_to_matrix", "TEACHER_FEAT_KEY"]

# optional batch entry (B, C_T): cached teacher features replace the teacher
TEACHER_FEAT_KEY = "teacher_feat"


@dataclass
class AugmentConfig:
    """Training-time point augmentation inside the network (official `generate_augmentation`, §1.3)."""

    enabled: bool = True
    max_angle_deg: float = 20.0  # each Euler angle ~ U(-a, a); dr = Rx Ry Rz
    max_translation: float = 0.02  # dt ~ U(-m, m) per axis, metres
    scale_range: tuple[float, float] = (0.8, 1.2)  # ds ~ U(lo, hi), one scalar per sample

    def validate(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {self.scale_range}")
        if self.max_angle_deg < 0 or self.max_translation < 0:
            raise ValueError("max_angle_deg and max_translation must be >= 0")


@dataclass
class CausalConfig:
    """The front-door module and its confounder queue (paper §4.2); disabled = AG-Pose."""

    enabled: bool = True
    front_door: FrontDoorConfig = field(default_factory=FrontDoorConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)


@dataclass
class KDConfig:
    """Residual distillation from a frozen point-cloud teacher (paper §4.3)."""

    enabled: bool = True
    mu: float = 0.1  # residual weight (official: hard-coded 0.1)
    teacher: PointBERTConfig = field(default_factory=PointBERTConfig)  # architecture of the teacher
    # Teacher weights: a `cleanpose teacher` file or an official ULIP-2 PointBERT checkpoint; null = random
    # (tests only: a warning is issued when a trainable model is built with an online random teacher).
    teacher_weights: str | None = None
    teacher_train_mode: bool = True  # official: the teacher follows model.train() (BN batch stats, DropPath)


@dataclass
class CleanPoseConfig:
    """Everything that defines the network and its training objective; YAML files are instances of it."""

    cat_num: int = 6  # categories (6 NOCS, 10 HouseCat6D); one NOCS head and one queue per category
    image: ImageBackboneConfig = field(default_factory=ImageBackboneConfig)
    points: PointNet2MSGConfig = field(default_factory=PointNet2MSGConfig)
    iakd: IAKDConfig = field(default_factory=IAKDConfig)
    gafa: GAFAConfig = field(default_factory=GAFAConfig)
    nocs: NOCSConfig = field(default_factory=NOCSConfig)
    head_hidden: int = 512  # hidden width of the pose/size estimator and of the reconstructor's decoder
    pts_per_kpt: int = 10  # reconstructed points per keypoint
    causal: CausalConfig = field(default_factory=CausalConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0  # seeds the model's own generators (augmentation, queue sampling, random queue init)

    @property
    def feat_dim(self) -> int:
        """C = C1 + C2, width of the fused point features and of every keypoint feature."""
        return self.points.out_channels + self.image.out_dim

    def validate(self) -> None:
        c = self.feat_dim
        if self.cat_num < 1 or self.head_hidden < 1 or self.pts_per_kpt < 1:
            raise ValueError("cat_num, head_hidden and pts_per_kpt must be >= 1")
        checks = {"iakd.query_dim": self.iakd.query_dim, "gafa.d_model": self.gafa.d_model,
                  "nocs.attn.d_model": self.nocs.attn.d_model}
        if self.causal.enabled:
            checks["causal.front_door.feat_dim"] = self.causal.front_door.feat_dim
        bad = {k: v for k, v in checks.items() if v != c}
        if bad:
            raise ValueError(f"widths {bad} must equal C = point features ({self.points.out_channels}) + "
                             f"image features ({self.image.out_dim}) = {c}")
        if self.loss.distillation > 0 and not self.kd.enabled:
            raise ValueError("loss.distillation > 0 needs kd.enabled: true")


def euler_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rx(a) Ry(b) Rz(c) (B, 3, 3) from angles (B, 3) in radians (the official augmentation's composition)."""
    cos, sin = angles.cos(), angles.sin()
    one, zero = torch.ones_like(angles[:, 0]), torch.zeros_like(angles[:, 0])

    def mat(rows):
        return torch.stack([torch.stack(r, dim=1) for r in rows], dim=1)

    rx = mat([[one, zero, zero], [zero, cos[:, 0], -sin[:, 0]], [zero, sin[:, 0], cos[:, 0]]])
    ry = mat([[cos[:, 1], zero, sin[:, 1]], [zero, one, zero], [-sin[:, 1], zero, cos[:, 1]]])
    rz = mat([[cos[:, 2], -sin[:, 2], zero], [sin[:, 2], cos[:, 2], zero], [zero, zero, one]])
    return rx @ ry @ rz


class CleanPose(nn.Module):
    """CleanPose (or AG-Pose with `causal.enabled` and `kd.enabled` false); see the module docstring.

    Top-level modules (as in the official `Net`): rgb_extractor (image backbone), feature_mlp (C_img -> C2),
    pts_extractor, iakd, gafa, fd_encoder + queue (causal), nocs_predictor, estimator, reconstructor, kd_head
    (K1, K2, psi) and teacher (KD). Parameters unused at inference: kd_head (and the teacher).
    """

    def __init__(self, cfg: CleanPoseConfig, *, teacher: bool = True, load_weights: bool = True):
        super().__init__()
        self.cfg = cfg
        c = cfg.feat_dim
        self.augment_generator = torch.Generator().manual_seed(cfg.seed)
        self.queue_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.rgb_extractor = build_image_backbone(cfg.image, load_weights)
        self.feature_mlp = nn.Conv1d(self.rgb_extractor.out_channels, cfg.image.out_dim, 1)
        self.pts_extractor = PointNet2MSG(cfg.points)
        self.iakd = IAKD(cfg.iakd)
        self.gafa = GAFA(cfg.gafa)
        self.fd_encoder = self.queue = None
        if cfg.causal.enabled:
            self.fd_encoder = FrontDoorEncoder(cfg.causal.front_door)
            self.queue = ConfounderQueue(cfg.causal.queue, cfg.cat_num, c,
                                         generator=torch.Generator().manual_seed(cfg.seed + 2))
        self.reconstructor = Reconstructor(c, cfg.pts_per_kpt, cfg.head_hidden)
        self.nocs_predictor = NOCSPredictor(cfg.nocs, c, cfg.cat_num)
        self.estimator = PoseSizeEstimator(c, cfg.head_hidden)
        # Eval only: a replacement of `keypoint_trunk` returning its first five outputs (the inference
        # runtime's ONNX Runtime graph of it, `inference/runtime.py`); None = `keypoint_trunk` itself.
        self.inference_trunk: nn.Module | None = None
        self.kd_head = self.teacher = None
        if cfg.kd.enabled:
            c1 = self.pts_extractor.out_channels
            self.kd_head = ResidualKDHead(c1, 2 * cfg.kd.teacher.trans_dim, cfg.kd.mu)
            if teacher:
                self.teacher = build_teacher(cfg.kd, load_weights)

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The model's random streams (name -> generator), for exact resume and reproducible tests."""
        return {"augment": self.augment_generator, "queue": self.queue_generator}

    def train(self, mode: bool = True) -> "CleanPose":
        super().train(mode)
        if self.teacher is not None and not self.cfg.kd.teacher_train_mode:
            self.teacher.eval()
        return self

    # -- pieces of the forward pass ------------------------------------------------------------------------

    def _check_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        for key in ("pts", "rgb", "choose", "category_label"):
            if key not in batch:
                raise KeyError(f"CleanPose input batch lacks '{key}' (has {sorted(batch)})")
        pts, rgb, choose = batch["pts"], batch["rgb"], batch["choose"]
        cls = batch["category_label"].reshape(-1).long()
        if pts.dim() != 3 or pts.shape[2] != 3:
            raise ValueError(f"pts must be (B, N, 3) metres, got {tuple(pts.shape)}")
        b, n = pts.shape[:2]
        s = self.cfg.image.image_size
        rgb_index = batch.get("rgb_index")
        if rgb_index is None and tuple(rgb.shape) != (b, 3, s, s):
            raise ValueError(f"rgb must be (B, 3, {s}, {s}) = {(b, 3, s, s)}, got {tuple(rgb.shape)}")
        if rgb_index is not None:
            rgb_index = rgb_index.reshape(-1).long()
            u = rgb.shape[0]
            if rgb.dim() != 4 or tuple(rgb.shape[1:]) != (3, s, s) or rgb_index.numel() != b or (
                    b and (int(rgb_index.min()) < 0 or int(rgb_index.max()) >= u)):
                raise ValueError(f"with rgb_index, rgb must be (U, 3, {s}, {s}) and rgb_index B = {b} rows "
                                 f"in [0, U), got rgb {tuple(rgb.shape)}, rgb_index {rgb_index.tolist()}")
        if tuple(choose.shape) != (b, n):
            raise ValueError(f"choose must be (B, N) = {(b, n)}, got {tuple(choose.shape)}")
        if cls.numel() != b or (b and (int(cls.min()) < 0 or int(cls.max()) >= self.cfg.cat_num)):
            raise ValueError(
                f"category_label must hold B = {b} ids in [0, {self.cfg.cat_num}), got {cls.tolist()}"
            )
        need = max(self.cfg.points.npoints[0], max(self.cfg.gafa.k_list))
        if n < need:
            raise ValueError(f"need at least {need} points per object, got N = {n}")
        return pts.float(), rgb, choose.long(), cls, rgb_index

    def image_features(self, rgb: torch.Tensor, choose: torch.Tensor,
                       rgb_index: torch.Tensor | None = None) -> torch.Tensor:
        """rgb (B, 3, S, S), choose (B, N) -> projected per-point image features (B, C2, N). With
        `rgb_index` (B,), rgb holds U <= B distinct crops and row i uses crop rgb_index[i]: the point samples
        of one object share its crop, and the image backbone (the costliest part) runs once per crop."""
        frozen = not any(p.requires_grad for p in self.rgb_extractor.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            feat_map = self.rgb_extractor(rgb)
        if rgb_index is not None:
            feat_map = feat_map[rgb_index]
        return self.feature_mlp(gather_pixel_features(feat_map, choose, self.cfg.image.image_size))

    def sample_augmentation(
        self, b: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """dr (B, 3, 3), dt (B, 1, 3) metres, ds (B, 1, 1), drawn on CPU from `augment_generator`."""
        a = self.cfg.augment
        u = torch.rand(b, 7, generator=self.augment_generator, dtype=torch.float64)
        dt = (2 * u[:, 0:3] - 1) * a.max_translation
        dr = euler_xyz_to_matrix((2 * u[:, 3:6] - 1) * math.radians(a.max_angle_deg))
        lo, hi = a.scale_range
        ds = lo + (hi - lo) * u[:, 6]
        f32 = dict(device=device, dtype=torch.float32)
        return dr.to(**f32), dt.view(b, 1, 3).to(**f32), ds.view(b, 1, 1).to(**f32)

    @torch.no_grad()
    def teacher_features(self, pts: torch.Tensor) -> torch.Tensor:
        """Teacher embedding (B, C_T) of the (centred, augmented) points (B, N, 3)."""
        if self.teacher is None:
            raise RuntimeError("KD is on but the model was built without a teacher and the batch has no "
                               f"'{TEACHER_FEAT_KEY}'; build with teacher=True or supply cached features")
        return self.teacher(pts)

    def keypoint_trunk(self, pts: torch.Tensor, pts_local: torch.Tensor, rgb_local: torch.Tensor,
                       samples: torch.Tensor | None, cls: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Everything after the two feature extractors: keypoints, aggregation, front door, NOCS and pose
        heads.

        pts (B, N, 3) centred, pts_local (B, C1, N), rgb_local (B, C2, N), samples (B, n_s, C) queue draws
        (None without the causal module), cls (B,) -> rot (B, 3, 3), trans (B, 3) (centred frame),
        size (B, 3), kpt_3d (B, K, 3), kpt_nocs (B, K, 3), heatmap (B, K, N), kpt_feat (B, K, C). One function
        of tensors with no index computation of its own, so a runtime can run it as one graph
        (`inference_trunk`).
        """
        point_feat = torch.cat([pts_local, rgb_local], dim=1).transpose(1, 2)  # (B, N, C), geometry first
        _, heatmap = self.iakd(point_feat)  # (B, K, N)
        kpt_3d = heatmap @ pts  # (B, K, 3)
        kpt_feat = heatmap @ point_feat  # (B, K, C)
        kpt_feat = self.gafa(kpt_feat, kpt_3d.detach(), point_feat, pts)
        if self.fd_encoder is not None:
            kpt_feat = self.fd_encoder(kpt_feat, samples.to(kpt_feat.dtype))
        kpt_nocs = self.nocs_predictor(kpt_feat, cls)
        rot, trans, size = self.estimator(kpt_3d, kpt_nocs.detach(), kpt_feat)
        return rot, trans, size, kpt_3d, kpt_nocs, heatmap, kpt_feat

    # -- forward -------------------------------------------------------------------------------------------

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Predict pose and size of every object of the batch.

        Args:
            batch: `pts` (B, N, 3) camera frame, metres; `rgb` (B, 3, S, S) ImageNet-normalised crop;
                `choose` (B, N) flat pixel index into the S x S crop of each point; `category_label` (B,)
                0-based; optionally `rgb_index` (B,) with `rgb` (U, 3, S, S): the crop of each row (shared
                crops); optionally `teacher_feat` (B, C_T) cached teacher features (training, KD).

        Returns (official key names; frames: camera, metres):
            pred_rotation (B, 3, 3) object -> camera, pred_translation (B, 3), pred_size (B, 3) metric
            extents, pred_kpt_3d (B, K, 3); in training also pred_kpt_nocs (B, K, 3), pred_heat_map (B, K, N),
            recon_model (B, K*P, 3), recon_delta (B, K*P, 3) (augmented frame), queue_feat (B, C) (causal),
            distillation_pointnet / distillation_ulip (B, C_T) (KD); in eval kpt_nocs.
        """
        pts, rgb, choose, cls, rgb_index = self._check_batch(batch)
        b = pts.shape[0]
        training = self.training
        samples = self.queue.sample(cls, self.queue_generator) if self.queue is not None else None

        centre = pts.mean(dim=1, keepdim=True)  # (B, 1, 3)
        pts = pts - centre
        rgb_local = self.image_features(rgb, choose, rgb_index)  # (B, C2, N)
        augment = training and self.cfg.augment.enabled
        if augment:
            dr, dt, ds = self.sample_augmentation(b, pts.device)
            pts = ((pts - dt) / ds) @ dr  # row vectors: p' = dr^T (p - dt) / ds

        pts_local = self.pts_extractor(pts)  # (B, C1, N)
        if not training:
            trunk = self.keypoint_trunk if self.inference_trunk is None else self.inference_trunk
            rot, trans, size, kpt_3d, kpt_nocs = trunk(pts, pts_local, rgb_local, samples, cls)[:5]
            return {"pred_rotation": rot, "pred_translation": trans + centre[:, 0], "pred_size": size,
                    "pred_kpt_3d": kpt_3d + centre, "kpt_nocs": kpt_nocs}
        rot, trans, size, kpt_3d, kpt_nocs, heatmap, kpt_feat = self.keypoint_trunk(
            pts, pts_local, rgb_local, samples, cls)

        recon, delta = self.reconstructor(kpt_3d, kpt_feat)  # training only: the reconstruction loss's input

        if augment:
            rot = dr @ rot
            trans = dt[:, 0] + ds[:, 0] * (dr @ trans.unsqueeze(2)).squeeze(2)
            size = size * ds[:, 0]
            kpt_3d = (kpt_3d @ dr.transpose(1, 2)) * ds + dt
            recon = (recon @ dr.transpose(1, 2)) * ds + dt
        out = {"pred_rotation": rot, "pred_translation": trans + centre[:, 0], "pred_size": size,
               "pred_kpt_3d": kpt_3d + centre, "pred_kpt_nocs": kpt_nocs, "pred_heat_map": heatmap,
               "recon_model": recon + centre, "recon_delta": delta}
        if self.fd_encoder is not None:
            out["queue_feat"] = kpt_feat.mean(dim=1).detach()
        if self.kd_head is not None:
            out["distillation_pointnet"] = self.kd_head(pts_local)
            cached = batch.get(TEACHER_FEAT_KEY)
            out["distillation_ulip"] = cached.float() if cached is not None else self.teacher_features(pts)
        return out


# ---------------------------------------------------------------------------------------------------------
# Constructors


def build_teacher(kd: KDConfig, load_weights: bool = True) -> PointBERT:
    """The frozen PointBERT teacher of `kd`, with its weights loaded when a file is named (a `cleanpose
    teacher` file or the official ULIP-2 PointBERT checkpoint, via
    `teachers.pointbert.load_teacher_weights`)."""
    teacher = PointBERT(kd.teacher)
    if kd.teacher_weights is not None:
        if load_weights:
            load_teacher_weights(teacher, kd.teacher_weights)
    else:
        warnings.warn("KD teacher has random weights (kd.teacher_weights is null): fine for tests, "
                      "meaningless for training", stacklevel=3)
    return teacher.requires_grad_(False)


def build_model(cfg: CleanPoseConfig, *, teacher: bool = True, load_weights: bool = True) -> CleanPose:
    """The network of `cfg` with its frozen weights loaded (image backbone, teacher).

    Args:
        teacher: build the online KD teacher (training); inference builds pass False to skip it.
        load_weights: read the weight files the config names; False leaves them random (e.g. to count
            parameters, or before loading a full checkpoint).
    """
    return CleanPose(cfg, teacher=teacher, load_weights=load_weights)
