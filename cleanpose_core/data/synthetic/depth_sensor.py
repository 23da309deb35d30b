"""Depth sensor models of the synthetic engine: `SynthConfig.depth_model`, `cleanpose synth --depth-model`.

- ideal: the rendered depth, only range-limited and quantised to millimetres (noise.py with the noise off);
- noisy: the per-pixel noise model of noise.py (dropouts, axial noise growing with distance); the default;
- stereo: a simulated active-stereo camera (stereo.py) of the camera preset's geometry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from cleanpose_core.data.synthetic.config import SynthConfig
from cleanpose_core.data.synthetic.noise import depth_to_sensor_mm
from cleanpose_core.data.synthetic.render import Frame, SceneRenderer

DepthSensor = Callable[[Frame, np.random.Generator], np.ndarray]


def make_depth_sensor(cfg: SynthConfig, renderer: SceneRenderer) -> DepthSensor:
    """A function (frame, rng) -> (H, W) uint16 depth in mm (0 = missing) in the frame's colour camera.

    Build it once per scene, after the renderer. `rng` draws the sensor's randomness (after the colour noise,
    so the colour images do not depend on the depth model).
    """
    if cfg.depth_model == "stereo":
        from cleanpose_core.data.synthetic.stereo import StereoCamera

        camera = StereoCamera(renderer, cfg.stereo)
        return lambda frame, rng: camera.capture(frame.R_wc, frame.C, rng).depth_mm
    noise = cfg.noise if cfg.depth_model == "noisy" else dataclasses.replace(cfg.noise, enabled=False)
    return lambda frame, rng: depth_to_sensor_mm(frame.depth, frame.cos_incidence, frame.albedo_luma, noise,
                                                 rng)
