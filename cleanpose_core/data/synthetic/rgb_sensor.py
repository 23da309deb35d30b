"""Colour-sensor effects of the synthetic engine (`rgb_effects: true`): linear scene radiance -> 8-bit RGB.

Applied per frame to the renderer's linear colour (after its 3x3 optical blur), in the order a camera does:
1. motion blur (a line kernel of random length and direction: camera motion during the exposure) and defocus
   blur (a disc kernel, the circle of confusion), both in linear light, with OpenCV's filter2D;
2. auto exposure to a mean linear luminance, times an exposure error of a few tenths of a stop;
3. shot and read noise with the Poissonian-Gaussian model of Foi et al. (IEEE TIP 2008): a Gaussian of
   variance `shot * signal + read^2` (the Poisson part approximated by a Gaussian, exact enough above a few
   electrons), then clipping at full well;
4. white balance: grey-world gains applied with a random strength (cameras correct a light's tint only in
   part), times a random error of the R and B gains;
5. a tone curve `v ** (1 / gamma)` with a jittered gamma, and quantisation to 8 bits;
6. JPEG compression at a random quality (cv2.imencode / imdecode), on a part of the frames.

`draw_sensor` draws a frame's values (a `SensorDraw`) from a numpy Generator, always the same number of draws,
and `apply_sensor` applies them; the two together are deterministic for a seed. A `SensorDraw()` with its
defaults is the identity of every effect except the gamma-2.2 encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from cleanpose_core.data.synthetic.config import RGBEffectsConfig

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luminance weights (linear RGB)
_LUT_SIZE = 65536  # linear -> 8-bit lookup: the first step is < 2 levels even in the shadows
_AE_GAIN = (0.25, 4.0)  # auto exposure's gain limits (about +-2 stops)


@dataclass
class SensorDraw:
    """One frame's values of the colour-sensor effects; the defaults switch every effect off."""

    motion_px: float = 0.0  # motion blur length in pixels (0 = none)
    motion_angle: float = 0.0  # its direction in radians (image x to the right, y down)
    defocus_px: float = 0.0  # defocus disc radius in pixels (0 = none)
    ae_mean: float | None = None  # auto exposure target (mean linear luminance); None = no auto exposure
    exposure: float = 1.0  # linear gain after auto exposure (2 ** EV error)
    shot: float = 0.0  # shot-noise variance per unit of linear signal
    read: float = 0.0  # read-noise standard deviation, linear units
    awb_strength: float = 0.0  # grey-world white balance: 0 = none, 1 = full
    wb_gains: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))  # R, G, B gain errors
    gamma: float = 2.2  # tone curve exponent
    jpeg_quality: int | None = None  # JPEG quality 1-100; None = no compression


def draw_sensor(cfg: RGBEffectsConfig, rng: np.random.Generator) -> SensorDraw:
    """A frame's sensor values drawn from `rng` (14 uniform draws, whichever effects are applied)."""
    u = rng.random(14)

    def between(lo_hi: tuple[float, float], x: float) -> float:
        return float(lo_hi[0] + (lo_hi[1] - lo_hi[0]) * x)

    motion = between(cfg.motion_blur_px, u[1]) if u[0] < cfg.motion_blur_prob else 0.0
    defocus = between(cfg.defocus_radius_px, u[4]) if u[3] < cfg.defocus_prob else 0.0
    wb = np.array([1.0 + cfg.white_balance * (2 * u[9] - 1), 1.0, 1.0 + cfg.white_balance * (2 * u[10] - 1)],
                  np.float32)
    q_lo, q_hi = cfg.jpeg_quality
    quality = int(q_lo + min(int(u[12] * (q_hi - q_lo + 1)), q_hi - q_lo)) if u[11] < cfg.jpeg_prob else None
    return SensorDraw(
        motion_px=motion,
        motion_angle=float(np.pi * u[2]),
        defocus_px=defocus,
        ae_mean=cfg.auto_exposure_mean,
        exposure=float(2.0 ** between(cfg.exposure_ev, u[5])),
        shot=between(cfg.shot_noise, u[6]),
        read=between(cfg.read_noise, u[7]),
        awb_strength=between(cfg.awb_strength, u[8]),
        wb_gains=wb,
        gamma=between(cfg.gamma, u[13]),
        jpeg_quality=quality,
    )


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """(k, k) float32 kernel summing to 1: a line `length` pixels long at `angle` (radians), anti-aliased."""
    half = int(np.ceil(length / 2))
    k = 2 * half + 1
    kernel = np.zeros((k, k), np.float32)
    t = np.linspace(-length / 2, length / 2, max(2, int(np.ceil(length * 4))))
    x, y = half + t * np.cos(angle), half + t * np.sin(angle)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    corners = ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy))
    for dx, dy, w in corners:
        xi, yi = np.clip(x0 + dx, 0, k - 1), np.clip(y0 + dy, 0, k - 1)
        np.add.at(kernel, (yi, xi), w.astype(np.float32))  # bilinear splat of points along the line
    return kernel / kernel.sum()


def disc_kernel(radius: float) -> np.ndarray:
    """(k, k) float32 kernel summing to 1: a disc of `radius` pixels, its edge pixels weighted by coverage."""
    half = int(np.ceil(radius))
    sub = 8  # 8 x 8 samples per pixel for the coverage
    c = (np.arange((2 * half + 1) * sub) + 0.5) / sub - half - 0.5
    inside = (c[:, None] ** 2 + c[None, :] ** 2 <= radius**2).astype(np.float32)
    kernel = inside.reshape(2 * half + 1, sub, 2 * half + 1, sub).mean(axis=(1, 3))
    return kernel / kernel.sum()


def _tone_lut(gamma: float) -> np.ndarray:
    levels = np.linspace(0.0, 1.0, _LUT_SIZE, dtype=np.float64)
    return (levels ** (1.0 / gamma) * 255.0 + 0.5).astype(np.uint8)


def apply_sensor(linear: np.ndarray, d: SensorDraw, rng: np.random.Generator,
                 read_field: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) float32 linear RGB radiance -> (H, W, 3) uint8 RGB image with the effects in `d`.

    `rng` draws the noise; `read_field` (H, W, 3) standard normals, if given, is used for the read noise
    instead of drawing it (the renderer passes the draw it makes for its own noise with the effects off).
    """
    img = np.ascontiguousarray(linear, dtype=np.float32)
    if d.motion_px > 0:
        img = cv2.filter2D(img, -1, motion_kernel(d.motion_px, d.motion_angle), borderType=cv2.BORDER_REFLECT)
    if d.defocus_px > 0:
        img = cv2.filter2D(img, -1, disc_kernel(d.defocus_px), borderType=cv2.BORDER_REFLECT)
    gain = d.exposure
    if d.ae_mean is not None:
        mean = float(img.reshape(-1, 3).mean(0) @ _LUMA)
        gain *= float(np.clip(d.ae_mean / max(mean, 1e-6), *_AE_GAIN))
    if gain != 1.0:
        img = img * np.float32(gain)
    if d.shot > 0 or d.read > 0:
        shot = np.sqrt(np.maximum(img, 0.0) * np.float32(d.shot)) * rng.standard_normal(img.shape, np.float32)
        if read_field is None:
            read_field = rng.standard_normal(img.shape, np.float32)
        img = img + shot + np.float32(d.read) * read_field
    img = np.clip(img, 0.0, 1.0)  # full well
    gains = d.wb_gains.astype(np.float32)
    if d.awb_strength > 0:
        means = np.maximum(img.reshape(-1, 3).mean(0), 1e-6)
        gains = gains * (means[1] / means) ** np.float32(d.awb_strength)
    if not np.all(gains == 1.0):
        img = np.clip(img * gains.astype(np.float32), 0.0, 1.0)
    rgb = _tone_lut(d.gamma)[(img * (_LUT_SIZE - 1) + 0.5).astype(np.int32)]
    if d.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, int(d.jpeg_quality)])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a frame")
        rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return rgb


ColourSensor = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def make_rgb_sensor(cfg: RGBEffectsConfig, rng: np.random.Generator) -> ColourSensor:
    """A function (linear (H, W, 3), read_field or None) -> uint8 RGB, drawing each frame from `rng`."""

    def sensor(linear: np.ndarray, read_field: np.ndarray | None) -> np.ndarray:
        return apply_sensor(linear, draw_sensor(cfg, rng), rng, read_field)

    return sensor
