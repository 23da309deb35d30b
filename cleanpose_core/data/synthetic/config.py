"""Typed configuration of the synthetic data engine (one dataclass per concern, every default visible here).

Load with `cleanpose_core.config.load_yaml(SynthConfig, path)` or `from_dict(SynthConfig, {...})`; unknown
keys are errors that name the key. The resolved config is written next to the data as `<split>/config.yaml`.
Lengths in metres, angles in degrees (config only; code converts to radians), probabilities in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cleanpose_core.geometry.camera import REAL275_INTRINSICS

# Realistic metric sizes, as the range of the tight-bbox diagonal (the NOCS `scale`) in metres per category.
# Chosen to bracket the REAL275 instances (bottles 0.2-0.3 m, laptops ~0.45 m, mugs ~0.13-0.16 m).
DEFAULT_SCALE_RANGES = {
    "bottle": (0.16, 0.34),
    "bowl": (0.11, 0.22),
    "camera": (0.12, 0.22),
    "can": (0.10, 0.20),
    "laptop": (0.36, 0.52),
    "mug": (0.10, 0.17),
}


@dataclass(frozen=True)
class StereoHead:
    """Geometry of an active-stereo module (rectified left/right IR pair, dot projector, colour camera)."""

    baseline: float  # metres from the left to the right IR camera (along the optical +x of the left one)
    ir_focal: float  # pixels, IR focal length at `ir_size`
    ir_size: tuple[int, int]  # (width, height) of the IR images and of the depth map before registration
    colour_offset: tuple[float, float, float]  # colour camera centre in the left-IR optical frame, metres
    emitter_offset: float  # metres from the left IR camera to the dot projector, along +x


@dataclass(frozen=True)
class CameraPreset:
    intrinsics: tuple[float, float, float, float]  # colour camera fx, fy, cx, cy in pixels
    width: int
    height: int
    stereo: StereoHead | None = None  # None: not an active-stereo sensor (no `--depth-model stereo`)


# Camera presets (`cleanpose synth --camera NAME`). Sources of the numbers:
# - real275: the REAL275 intrinsics the NOCS / DPDN code uses (cleanpose_core.geometry.camera).
# - d435 colour, 640x480: (610.30, 610.30, 323.51, 240.51), the "default Intel D435 intrinsics" quoted in
#   github.com/robopen/roboagent/issues/23; other units print 606-612 px (librealsense issues 7300, 2788).
#   D435 IR/depth at 640x480: fx = fy = 384.2 px, FOV 79.6 x 64.0 deg (rs-enumerate-devices -c printout in
#   realsense-ros issue 2788; another unit 383.0 px); at 1280x720 units print 644.9 px (librealsense issue
#   11511), i.e. 89.5 x 58.3 deg against the datasheet's depth FOV H 87 +- 3, V 58 +- 1 deg (D400 datasheet
#   Table 3-42, quoted in github.com/bmegli/realsense-network-hardware-video-encoder/issues/14).
#   Baseline 50 mm and colour camera 15 mm to the left of the left imager (optical -x): realsense-ros
#   _d435.urdf.xacro nominal extrinsics (depth_to_infra2 -0.050, depth_to_color +0.015 along the body's
#   y = left); a calibrated unit reports 50.03 mm and 14.6 mm (orb_slam_2_ros issue 46). The projector sits
#   between the two imagers (D400 datasheet, figure "Active Infrared (IR) Stereo Vision Technology"); its
#   exact position is not published, we take the midpoint.
# - d415: baseline 55 mm and colour 15 mm to the left of the left imager (realsense-ros _d415.urdf.xacro).
#   IR focal at 640x480: Intel's white paper on the D435/D415 high-speed capture modes gives f ~ 940 px at
#   1280x720 for the D415 (and ~645 px for the D435, which matches the printouts above). We take the D415's
#   VGA mode as the 4:3 centre of its 1920x1080 imager scaled by 4/9 (HD: 2/3; our reading, no printout
#   found), so 940 * 2/3 = 627 px, i.e. 42 deg vertical FOV against the datasheet's 40 +- 1 deg (Table
#   3-42, "Depth FOV VGA"). The colour sensor (OV2740) and its FOV (H 69 / V 42 deg) are the D435's per the
#   same table, so the D435 colour numbers.
# - azure_720p: Azure Kinect colour camera at 1280x720: a factory calibration at 1920x1080 (919.43, 919.38,
#   953.07, 551.76; github.com/etiennedub/pyk4a/issues/35) scaled by 2/3; the spec FOV at 720p is 90 x 59 deg
#   (Azure-Kinect-Sensor-SDK issue 1873). Its depth is time-of-flight, so it has no stereo head.
CAMERA_PRESETS: dict[str, CameraPreset] = {
    "real275": CameraPreset(REAL275_INTRINSICS, 640, 480),
    "d435": CameraPreset((610.30, 610.30, 323.51, 240.51), 640, 480,
                         StereoHead(0.050, 384.2, (640, 480), (-0.015, 0.0, 0.0), 0.025)),
    "d415": CameraPreset((610.30, 610.30, 323.51, 240.51), 640, 480,
                         StereoHead(0.055, 627.0, (640, 480), (-0.015, 0.0, 0.0), 0.0275)),
    "azure_720p": CameraPreset((612.95, 612.92, 635.38, 367.84), 1280, 720),
}


@dataclass
class CameraConfig:
    # Preset that fills `intrinsics`, `width` and `height` when they are not given (and the stereo head).
    preset: str = "real275"
    intrinsics: tuple[float, float, float, float] | None = None  # fx, fy, cx, cy in pixels; None = preset's
    width: int | None = None  # pixels; None = preset's
    height: int | None = None  # pixels; None = preset's
    distance: tuple[float, float] = (0.45, 1.1)  # metres from the look-at point on the table
    elevation_deg: tuple[float, float] = (25.0, 75.0)  # angle of the view ray above the table plane
    roll_deg: float = 6.0  # max |roll| about the optical axis
    target_jitter: float = 0.08  # metres: look-at point jitter around the objects' centre

    def __post_init__(self) -> None:
        preset = CAMERA_PRESETS.get(self.preset)
        if preset is None:
            return  # validate() names the bad preset
        if self.intrinsics is None:
            self.intrinsics = preset.intrinsics
        if self.width is None:
            self.width = preset.width
        if self.height is None:
            self.height = preset.height

    def validate(self) -> None:
        if self.preset not in CAMERA_PRESETS:
            raise ValueError(f"camera preset must be one of {sorted(CAMERA_PRESETS)}, got {self.preset!r}")
        fx, fy, _, _ = self.intrinsics
        if fx <= 0 or fy <= 0 or self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"intrinsics/size must be positive, got {self.intrinsics}, {self.width}x{self.height}"
            )
        if not 0 < self.distance[0] <= self.distance[1]:
            raise ValueError(f"distance range must be 0 < lo <= hi, got {self.distance}")
        if not 0 < self.elevation_deg[0] <= self.elevation_deg[1] <= 90:
            raise ValueError(f"elevation_deg must be within (0, 90], got {self.elevation_deg}")


@dataclass
class SceneConfig:
    objects: tuple[int, int] = (1, 6)  # min, max category objects per scene
    distractors: tuple[int, int] = (0, 4)  # min, max non-category primitives (boxes, balls, cones, ...)
    lying_prob: float = 0.2  # chance a bottle / can / mug rests on its side
    upside_down_prob: float = 0.08  # chance a bowl / mug / can stands upside down
    table_extent: tuple[float, float] = (1.6, 1.2)  # metres, table top size
    placement_extent: tuple[float, float] = (0.6, 0.45)  # metres, region the objects are placed in
    # metres between object footprints (contact allowed: occlusion comes from the view)
    min_gap: float = 0.005
    scale_ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SCALE_RANGES))
    pool_size: int = 60  # shape instances per category; even indices are train, odd are test
    val_pool_size: int = 30  # validation instances per category, the indices after pool_size (split val)
    shape_seed: int = 0  # seed of the instance pool: keep it fixed so model ids mean the same mesh everywhere
    biased: bool = False  # confounder study: in the train split, body colour is tied to the category
    bias_strength: float = 0.9  # probability that a train object gets its category's colour when biased
    # Imported meshes (meshes.py, shape_source.py): procedural | meshes | mixed, the folder (ShapeNetCore v2,
    # NOCS obj_models or a meshes.yaml folder) and, when mixed, the chance an object of a category with meshes
    # uses one.
    shape_source: Literal["procedural", "meshes", "mixed"] = "procedural"
    meshes: str | None = None
    mesh_fraction: float = 0.5

    def validate(self) -> None:
        if not 1 <= self.objects[0] <= self.objects[1] <= 254:
            raise ValueError(f"objects must satisfy 1 <= min <= max <= 254, got {self.objects}")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"distractors must satisfy 0 <= min <= max, got {self.distractors}")
        for name in ("lying_prob", "upside_down_prob", "bias_strength"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        from cleanpose_core import NOCS_CATEGORIES

        missing = sorted(set(NOCS_CATEGORIES) - set(self.scale_ranges))
        extra = sorted(set(self.scale_ranges) - set(NOCS_CATEGORIES))
        if missing or extra:
            raise ValueError(
                f"scale_ranges must name exactly {NOCS_CATEGORIES}; missing {missing}, unknown {extra}"
            )
        for cat, (lo, hi) in self.scale_ranges.items():
            if not 0 < lo <= hi:
                raise ValueError(f"scale_ranges.{cat} must satisfy 0 < lo <= hi, got {(lo, hi)}")
        if self.val_pool_size < 1:
            raise ValueError(f"val_pool_size must be >= 1, got {self.val_pool_size}")
        if self.pool_size < 2:
            raise ValueError(
                f"pool_size must be >= 2 (one train and one test instance), got {self.pool_size}"
            )
        if self.shape_source not in ("procedural", "meshes", "mixed"):
            raise ValueError(f"shape_source must be procedural, meshes or mixed, got {self.shape_source!r}")
        if self.shape_source != "procedural" and not self.meshes:
            raise ValueError(
                f"shape_source {self.shape_source!r} needs a meshes folder (cleanpose synth --meshes DIR)"
            )
        if not 0.0 <= self.mesh_fraction <= 1.0:
            raise ValueError(f"mesh_fraction must be in [0, 1], got {self.mesh_fraction}")


@dataclass
class NoiseConfig:
    enabled: bool = True  # False: exact depth, only quantised to mm (the on-disk format)
    # metres; sigma(z) = base + quad * (z - 0.4)^2 (Kinect model, Nguyen et al. 2012)
    axial_base: float = 0.0012
    axial_quad: float = 0.0019  # metres per metre^2
    edge_dropout: float = 0.5  # chance a pixel at a depth discontinuity is missing
    edge_jump: float = 0.02  # metres; a 3x3 depth range above this (plus 2 % of z) marks an edge
    grazing_cos: float = 0.25  # below this |cos(incidence)| pixels start to drop out (~75 deg)
    dark_albedo: float = 0.02  # linear albedo luminance (sRGB ~0.15) below which pixels start to drop out
    dark_dropout: float = 0.7  # dropout chance at zero albedo
    speckle: float = 0.002  # chance of an isolated missing pixel anywhere
    min_depth: float = 0.2  # metres; nearer returns are missing
    max_depth: float = 4.0  # metres; farther returns are missing


@dataclass
class RenderConfig:
    ambient: tuple[float, float] = (0.25, 0.45)  # ambient light level range
    light_intensity: tuple[float, float] = (0.6, 1.0)  # key light range
    light_elevation_deg: tuple[float, float] = (35.0, 85.0)  # key light direction above the table
    shadows: bool = True  # cast shadow rays for the key light
    image_noise: float = 2.0  # std of additive colour noise, in 8-bit levels
    threads: int = 0  # ray-casting threads, 0 = all cores


@dataclass
class StereoConfig:
    """Active-stereo simulation (`depth_model: stereo`, see stereo.py).

    The geometry fields default to None = the camera preset's stereo head (CAMERA_PRESETS); give all five to
    simulate another sensor. The rest describes the simulation, identical for every preset.
    """

    baseline: float | None = None  # metres between the IR cameras
    ir_focal: float | None = None  # pixels
    ir_size: tuple[int, int] | None = None  # (width, height) pixels
    colour_offset: tuple[float, float, float] | None = None  # colour camera centre in the left-IR frame, m
    emitter_offset: float | None = None  # projector position along the baseline from the left IR camera, m
    # The D4 vision processor searches 128 disparities; with the same range MinZ = ir_focal * baseline / 128
    # (0.15 m for the D435, 0.27 m for the D415 at 640x480).
    max_disparity: int = 128
    block_size: int = 5  # SGBM matching window (odd); larger = smoother depth, fatter edges
    uniqueness_ratio: int = 10  # percent by which the best match must beat the second best
    lr_max_diff: int = 1  # pixels allowed between left->right and right->left disparity (consistency check)
    speckle_window: int = 50  # disparity blobs smaller than this many pixels are removed (0 = off)
    speckle_range: int = 2  # disparity variation (pixels) within one blob
    dot_fill: float = 0.12  # fraction of projector pixels that carry a dot
    dot_blur: float = 0.7  # projector pixels, Gaussian sigma of one dot
    ambient: float = 0.25  # ambient IR relative to the projector's irradiance at 1 m
    read_noise: float = 1.5  # IR image read noise, 8-bit levels
    shot_gain: float = 0.4  # shot noise: variance grows by this many levels^2 per level of signal
    exposure_level: float = 200.0  # auto exposure puts the 95th percentile of the left IR image here (levels)
    min_depth: float = 0.1  # metres; nearer values are dropped
    max_depth: float = 4.0  # metres; farther values are dropped

    def head_missing(self) -> list[str]:
        return [n for n in ("baseline", "ir_focal", "ir_size", "colour_offset", "emitter_offset")
                if getattr(self, n) is None]

    def validate(self) -> None:
        if self.max_disparity < 16 or self.max_disparity % 16:
            raise ValueError(f"max_disparity must be a positive multiple of 16, got {self.max_disparity}")
        if not (1 <= self.block_size <= 11 and self.block_size % 2 == 1):
            raise ValueError(f"block_size must be odd and within [1, 11], got {self.block_size}")
        if self.baseline is not None and self.baseline <= 0:
            raise ValueError(f"baseline must be positive, got {self.baseline}")
        if self.ir_focal is not None and self.ir_focal <= 0:
            raise ValueError(f"ir_focal must be positive, got {self.ir_focal}")
        if self.ir_size is not None and min(self.ir_size) <= 0:
            raise ValueError(f"ir_size must be positive, got {self.ir_size}")
        if not 0.0 < self.dot_fill < 1.0:
            raise ValueError(f"dot_fill must be in (0, 1), got {self.dot_fill}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if min(self.dot_blur, self.ambient, self.read_noise, self.shot_gain) < 0 or self.exposure_level <= 0:
            raise ValueError("dot_blur, ambient, read_noise and shot_gain must be >= 0, exposure_level > 0")


@dataclass
class RGBEffectsConfig:
    """Colour-sensor and scene effects (`rgb_effects: true`, `cleanpose synth --rgb-effects`; rgb_sensor.py
    and scene_effects.py). Ranges are (lo, hi), drawn uniformly per frame (sensor) or per scene (lights,
    textures)."""

    # Scene: a key light plus fills (one light is today's look; 2-3 add crossed shadows and mixed tints).
    lights: tuple[int, int] = (1, 3)
    # Kelvin: a 2700 K tungsten bulb .. 7500 K overcast daylight (office LEDs 3000-6500 K in between).
    colour_temperature_k: tuple[float, float] = (2700.0, 7500.0)
    fill_intensity: tuple[float, float] = (0.25, 0.6)  # fill lights relative to the key light
    distractor_texture_prob: float = 0.8  # clutter gets noise/stripes/checker/wood textures
    background_texture_prob: float = 0.8  # walls, floor and a plain table get one
    distractor_tile_m: tuple[float, float] = (0.02, 0.1)  # texture period on clutter (3-14 cm objects)
    background_tile_m: tuple[float, float] = (0.15, 1.0)  # texture period on walls, floor, table
    # Sensor. Auto exposure meters the mean linear luminance to this (effects-off renders measure 0.19-0.33),
    # then an exposure error of this many stops (EV) is added: AE settles late, meters on the wrong region.
    auto_exposure_mean: float = 0.25
    exposure_ev: tuple[float, float] = (-0.7, 0.5)
    # Grey-world auto white balance applied with this strength (1 = full correction of the lights' tint) ...
    awb_strength: tuple[float, float] = (0.5, 1.0)
    white_balance: float = 0.08  # ... then each of the R and B gains is off by up to this fraction
    gamma: tuple[float, float] = (1.9, 2.5)  # tone curve exponent around sRGB's 2.2
    # Noise in linear [0, 1] units, variance = shot * signal + read^2 (Foi et al. 2008, Poissonian-Gaussian
    # model): up to ~5 8-bit levels in mid-tones, a few in the shadows (webcam to good machine-vision camera).
    shot_noise: tuple[float, float] = (5e-5, 1.5e-3)
    read_noise: tuple[float, float] = (5e-4, 4e-3)
    motion_blur_prob: float = 0.25  # a moving robot / hand-held camera during a 10-30 ms exposure
    motion_blur_px: tuple[float, float] = (3.0, 15.0)  # blur length in pixels, random direction
    defocus_prob: float = 0.2  # objects outside the depth of field (fixed-focus or slow autofocus)
    defocus_radius_px: tuple[float, float] = (1.0, 3.0)  # disc (circle of confusion) radius in pixels
    jpeg_prob: float = 0.5  # compressed streams (image_transport compressed, web cameras, datasets as JPEG)
    jpeg_quality: tuple[int, int] = (30, 95)

    def validate(self) -> None:
        ranges = (
            "lights",
            "colour_temperature_k",
            "fill_intensity",
            "distractor_tile_m",
            "background_tile_m",
            "exposure_ev",
            "awb_strength",
            "gamma",
            "shot_noise",
            "read_noise",
            "motion_blur_px",
            "defocus_radius_px",
            "jpeg_quality",
        )
        for name in ranges:
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"effects.{name} must satisfy lo <= hi, got {(lo, hi)}")
        for name in ("distractor_texture_prob", "background_texture_prob", "motion_blur_prob", "defocus_prob",
                     "jpeg_prob", "awb_strength"):
            value = getattr(self, name)
            if not all(0.0 <= v <= 1.0 for v in (value if isinstance(value, tuple) else (value,))):
                raise ValueError(f"effects.{name} must be in [0, 1], got {getattr(self, name)}")
        lo_k, hi_k = self.colour_temperature_k
        if self.lights[0] < 1 or not 1000 <= lo_k <= hi_k <= 40000:
            raise ValueError("effects.lights must be >= 1 and colour_temperature_k within [1000, 40000] K")
        if min(self.distractor_tile_m[0], self.background_tile_m[0], self.gamma[0],
               self.auto_exposure_mean) <= 0:
            raise ValueError("effects tile sizes, gamma and auto_exposure_mean must be positive")
        if min(self.shot_noise[0], self.read_noise[0], self.white_balance, self.motion_blur_px[0],
               self.defocus_radius_px[0], self.fill_intensity[0]) < 0:
            raise ValueError("effects noise, white_balance, blur sizes and fill_intensity must be >= 0")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"effects.jpeg_quality must be within [1, 100], got {self.jpeg_quality}")


DepthModel = Literal["ideal", "noisy", "stereo"]
DEPTH_MODELS = ("ideal", "noisy", "stereo")


@dataclass
class SynthConfig:
    """Everything that decides what a split looks like (with the seed and the scene count)."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    stereo: StereoConfig = field(default_factory=StereoConfig)
    # ideal: exact depth quantised to mm; noisy: the per-pixel noise model of noise.py (`noise`); stereo: a
    # simulated active-stereo camera (stereo.py), which needs a camera preset with a stereo head.
    depth_model: DepthModel = "noisy"
    # Colour-sensor and scene effects (`effects`): off keeps the colour images of the engine before them.
    rgb_effects: bool = False
    effects: RGBEffectsConfig = field(default_factory=RGBEffectsConfig)
    frames_per_scene: int = 4  # viewpoints rendered per scene (cheaper than new scenes)
    min_valid_depth: int = 64  # DPDN rule: an instance is labelled if it has this many valid depth pixels
    handle_min_pixels: int = 16  # a mug handle with fewer visible pixels counts as hidden
    n_model_points: int = 1024  # points per model in obj_models/<split>.pkl

    def __post_init__(self) -> None:
        self._fill_stereo_head()

    def _fill_stereo_head(self, overwrite: bool = False) -> None:
        preset = CAMERA_PRESETS.get(self.camera.preset)
        head = preset.stereo if preset is not None else None
        if head is None:
            return
        for name in ("baseline", "ir_focal", "ir_size", "colour_offset", "emitter_offset"):
            if overwrite or getattr(self.stereo, name) is None:
                setattr(self.stereo, name, getattr(head, name))

    def use_camera(self, preset: str) -> None:
        """Switch to camera preset `preset`: its intrinsics, image size and (if any) stereo head."""
        if preset not in CAMERA_PRESETS:
            raise ValueError(f"camera preset must be one of {sorted(CAMERA_PRESETS)}, got {preset!r}")
        p = CAMERA_PRESETS[preset]
        self.camera.preset, self.camera.intrinsics = preset, p.intrinsics
        self.camera.width, self.camera.height = p.width, p.height
        if p.stereo is None:
            for name in ("baseline", "ir_focal", "ir_size", "colour_offset", "emitter_offset"):
                setattr(self.stereo, name, None)
        self._fill_stereo_head(overwrite=True)

    def validate(self) -> None:
        if self.depth_model not in DEPTH_MODELS:
            raise ValueError(f"depth_model must be one of {list(DEPTH_MODELS)}, got {self.depth_model!r}")
        missing = self.stereo.head_missing()
        if self.depth_model == "stereo" and missing:
            stereo_presets = sorted(k for k, v in CAMERA_PRESETS.items() if v.stereo is not None)
            raise ValueError(
                f"depth_model 'stereo' needs a stereo camera: camera preset {self.camera.preset!r} has none "
                f"(missing stereo.{', stereo.'.join(missing)}); use one of {stereo_presets} "
                "(cleanpose synth --camera NAME) or give those stereo fields")
        if self.frames_per_scene < 1:
            raise ValueError(f"frames_per_scene must be >= 1, got {self.frames_per_scene}")
        if self.min_valid_depth < 1 or self.handle_min_pixels < 1 or self.n_model_points < 1:
            raise ValueError("min_valid_depth, handle_min_pixels and n_model_points must be >= 1")
