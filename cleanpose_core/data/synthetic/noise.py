"""Depth-sensor noise model for synthetic depth: missing pixels, distance-dependent noise, mm quantisation.

Effects, applied in this order to exact rendered depth (metres), each switchable through NoiseConfig:
1. missing returns at depth discontinuities (structured-light / stereo sensors lose pixels at object edges),
   dilated by a random one-pixel jitter so the holes are ragged, not a clean outline;
2. missing returns on grazing surfaces (|cos incidence| below `grazing_cos`, probability rising to 1 at 90
deg);
3. missing returns on dark surfaces (albedo luminance below `dark_albedo`: black lenses, off screens);
4. isolated speckle dropouts;
5. axial Gaussian noise with sigma(z) = axial_base + axial_quad * (z - 0.4)^2 (the Kinect model of
   Nguyen, Izadi and Lovell, 3DIMPVT 2012);
6. range limits, then quantisation to whole millimetres (the uint16 `_depth.png` format).
With `enabled = False` only steps 6 run, so clean depth differs from the truth by at most 0.5 mm.
"""

from __future__ import annotations

import cv2
import numpy as np

from cleanpose_core.data.synthetic.config import NoiseConfig


def depth_to_sensor_mm(
    depth_m: np.ndarray,
    cos_incidence: np.ndarray,
    albedo_luma: np.ndarray,
    cfg: NoiseConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """(H, W) exact depth in metres (0 = no hit) -> (H, W) uint16 sensor depth in mm (0 = missing).

    `cos_incidence` and `albedo_luma` are (H, W) float arrays from the renderer; `rng` draws all randomness.
    """
    depth = depth_m.astype(np.float32).copy()
    valid = depth > 0
    if cfg.enabled:
        drop = np.zeros(depth.shape, bool)
        # 1. edges: a large depth range in the 3x3 neighbourhood (background counted as far away).
        filled = np.where(valid, depth, 10.0).astype(np.float32)
        kernel = np.ones((3, 3), np.uint8)
        jump = cv2.dilate(filled, kernel) - cv2.erode(filled, kernel)
        edge = jump > cfg.edge_jump + 0.02 * filled
        edge = edge | (
            cv2.dilate(edge.astype(np.uint8), kernel).astype(bool) & (rng.random(depth.shape) < 0.3)
        )
        drop |= edge & (rng.random(depth.shape) < cfg.edge_dropout)
        # 2. grazing incidence.
        p_graze = np.clip((cfg.grazing_cos - cos_incidence) / max(cfg.grazing_cos, 1e-6), 0.0, 1.0)
        drop |= rng.random(depth.shape) < p_graze
        # 3. dark, light-absorbing surfaces.
        p_dark = cfg.dark_dropout * np.clip(
            (cfg.dark_albedo - albedo_luma) / max(cfg.dark_albedo, 1e-6), 0.0, 1.0
        )
        drop |= rng.random(depth.shape) < p_dark
        # 4. speckle.
        drop |= rng.random(depth.shape) < cfg.speckle
        # 5. axial noise.
        sigma = cfg.axial_base + cfg.axial_quad * (depth - 0.4) ** 2
        depth = depth + rng.standard_normal(depth.shape).astype(np.float32) * sigma
        valid &= ~drop
    valid &= (depth >= cfg.min_depth) & (depth <= cfg.max_depth)
    mm = np.where(valid, np.rint(depth * 1000.0), 0.0)
    return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)
