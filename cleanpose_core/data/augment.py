"""Training-time augmentation of one instance, as the official readers do it, drawn from an explicit
generator.

Per training instance ([CP provider/nocs_dataset.py, utils/data_utils.py], architecture-facts §1.2 steps 6-7):
- colour: torchvision `ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.3)` on the resized
crop,
  then `rgb_add_noise`: saturation ×U(1.25, 1.45) and value ×U(1.15, 1.35) in HSV (always); with p = 0.2 each
  a random sharpen, a linear motion blur (1-15 px, random angle) and a Gaussian blur (3×3 with p 0.8, else
  5×5, σ ~ U(0, 1)); Gaussian pixel noise with σ = randint(15) (p 0.8) or randint(25); with p = 0.2 extra N(0,
  7) noise;
- points: clip(0.001 · N(0, 1), −0.005, 0.005) metres added to every coordinate.
(Rotation / translation / scale augmentation happens inside the network, on the batch.)

Differences from the official code, on purpose:
- every draw comes from the `numpy.random.Generator` passed in, not from numpy's / torch's global state, so a
  sample is a function of its seed whatever worker process loads it (exact resume). The distributions are the
  official ones; the random streams are not, so individual samples differ from the official ones;
- ColorJitter's factors and order are drawn from that generator and applied with torchvision's own
  `adjust_*` functions on a PIL image, which is what `ColorJitter` does after drawing from torch's RNG;
- the official code converts its RGB array with OpenCV's BGR→HSV; saturation and value do not depend on the
  channel order and HSV→BGR swaps back, so converting RGB→HSV→RGB here gives the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image

__all__ = ["ColorAugmentConfig", "color_jitter", "linear_motion_blur", "rgb_add_noise", "augment_rgb",
           "point_noise"]


@dataclass
class ColorAugmentConfig:
    """Colour augmentation strengths (official values); `enabled: false` turns all of it off."""

    enabled: bool = True
    brightness: float = 0.4  # factor ~ U(1 - b, 1 + b)
    contrast: float = 0.4  # factor ~ U(1 - c, 1 + c)
    saturation: float = 0.4  # factor ~ U(1 - s, 1 + s)
    hue: float = 0.3  # shift ~ U(-h, h), fraction of the hue circle (<= 0.5)
    add_noise: bool = True  # the official `rgb_add_noise` chain after the jitter

    def validate(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, hue: float = 0.3) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB: torchvision ColorJitter's four adjustments, random
    order."""
    order = rng.permutation(4)
    b = rng.uniform(max(0.0, 1 - brightness), 1 + brightness)
    c = rng.uniform(max(0.0, 1 - contrast), 1 + contrast)
    s = rng.uniform(max(0.0, 1 - saturation), 1 + saturation)
    h = rng.uniform(-hue, hue)
    pil = Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8))
    for fn in order:
        if fn == 0 and brightness > 0:
            pil = TF.adjust_brightness(pil, b)
        elif fn == 1 and contrast > 0:
            pil = TF.adjust_contrast(pil, c)
        elif fn == 2 and saturation > 0:
            pil = TF.adjust_saturation(pil, s)
        elif fn == 3 and hue > 0:
            pil = TF.adjust_hue(pil, h)
    return np.asarray(pil, dtype=np.uint8)


def linear_motion_blur(img: np.ndarray, angle_deg: float, length: int) -> np.ndarray:
    """Blur along a line of `length` px at `angle_deg` (the official kernel: a line from the kernel
    centre)."""
    rad = np.deg2rad(angle_deg)
    dx, dy = np.cos(rad), np.sin(rad)
    a = int(max(abs(dx), abs(dy)) * length * 2)
    if a <= 0:
        return img
    kernel = np.zeros((a, a))
    c = a // 2
    cv2.line(kernel, (c, c), (int(dx * length + c), int(dy * length + c)), 1.0)
    total = kernel.sum()
    if total == 0:
        kernel[c, c] = 1.0
    else:
        kernel /= total
    return cv2.filter2D(img, -1, kernel)


def rgb_add_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) uint8: the official HSV / sharpen / blur / noise chain (see
    module)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float64)
    hsv[:, :, 1] = np.clip(np.trunc(hsv[:, :, 1] * rng.uniform(1.25, 1.45)), 0, 255)
    hsv[:, :, 2] = np.clip(np.trunc(hsv[:, :, 2] * rng.uniform(1.15, 1.35)), 0, 255)
    img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)

    if rng.random() > 0.8:  # sharpen
        kernel = -np.ones((3, 3))
        kernel[1, 1] = rng.random() * 3 + 9
        kernel /= kernel.sum()
        img = cv2.filter2D(img, -1, kernel)
    if rng.random() > 0.8:  # motion blur
        img = linear_motion_blur(img, int(rng.random() * 360), int(rng.random() * 15) + 1)
    if rng.random() > 0.8:  # Gaussian blur
        ksize = (3, 3) if rng.random() > 0.2 else (5, 5)
        img = cv2.GaussianBlur(img, ksize, rng.random())
    sigma = rng.integers(15) if rng.random() > 0.2 else rng.integers(25)
    out = np.clip(img + rng.standard_normal(img.shape) * sigma, 0, 255).astype(np.uint8)
    if rng.random() > 0.8:
        return np.clip(out + rng.normal(0.0, 7.0, out.shape), 0, 255).astype(np.uint8)
    return out


def augment_rgb(img: np.ndarray, rng: np.random.Generator, cfg: ColorAugmentConfig) -> np.ndarray:
    """(S, S, 3) uint8 RGB crop -> augmented crop: `color_jitter` then `rgb_add_noise`, as configured."""
    if not cfg.enabled:
        return img
    img = color_jitter(img, rng, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
    return rgb_add_noise(img, rng) if cfg.add_noise else img


def point_noise(
    n_points: int, rng: np.random.Generator, sigma: float = 0.001, clip: float = 0.005
) -> np.ndarray:
    """(N, 3) float32 noise in metres: clip(sigma · N(0, 1), −clip, clip) per coordinate (official 1 mm, ±5
    mm)."""
    return np.clip(sigma * rng.standard_normal((n_points, 3)), -clip, clip).astype(np.float32)
