"""Typed configuration of the synthetic data engine (one dataclass per concern, every default visible here).

Load with `cleanpose_core.config.load_yaml(SynthConfig, path)` or `from_dict(SynthConfig, {...})`; unknown keys
are errors that name the key. The resolved config is written next to the data as `<split>/config.yaml`.
Lengths in metres, angles in degrees (config only; code converts to radians), probabilities in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class CameraConfig:
    intrinsics: tuple[float, float, float, float] = REAL275_INTRINSICS  # fx, fy, cx, cy in pixels (REAL275)
    width: int = 640  # pixels
    height: int = 480  # pixels
    distance: tuple[float, float] = (0.45, 1.1)  # metres from the look-at point on the table
    elevation_deg: tuple[float, float] = (25.0, 75.0)  # angle of the view ray above the table plane
    roll_deg: float = 6.0  # max |roll| about the optical axis
    target_jitter: float = 0.08  # metres: look-at point jitter around the objects' centre

    def validate(self) -> None:
        fx, fy, _, _ = self.intrinsics
        if fx <= 0 or fy <= 0 or self.width <= 0 or self.height <= 0:
            raise ValueError(f"intrinsics/size must be positive, got {self.intrinsics}, {self.width}x{self.height}")
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
    min_gap: float = 0.005  # metres between object footprints (contact allowed: occlusion comes from the view)
    scale_ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SCALE_RANGES))
    pool_size: int = 60  # shape instances per category; even indices are train, odd are test
    shape_seed: int = 0  # seed of the instance pool: keep it fixed so model ids mean the same mesh everywhere
    biased: bool = False  # confounder study: in the train split, body colour is tied to the category
    bias_strength: float = 0.9  # probability that a train object gets its category's colour when biased

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
            raise ValueError(f"scale_ranges must name exactly {NOCS_CATEGORIES}; missing {missing}, unknown {extra}")
        for cat, (lo, hi) in self.scale_ranges.items():
            if not 0 < lo <= hi:
                raise ValueError(f"scale_ranges.{cat} must satisfy 0 < lo <= hi, got {(lo, hi)}")
        if self.pool_size < 2:
            raise ValueError(f"pool_size must be >= 2 (one train and one test instance), got {self.pool_size}")


@dataclass
class NoiseConfig:
    enabled: bool = True  # False: exact depth, only quantised to mm (the on-disk format)
    axial_base: float = 0.0012  # metres; sigma(z) = base + quad * (z - 0.4)^2 (Kinect model, Nguyen et al. 2012)
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
class SynthConfig:
    """Everything that decides what a split looks like (with the seed and the scene count)."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    frames_per_scene: int = 4  # viewpoints rendered per scene (cheaper than new scenes)
    min_valid_depth: int = 64  # DPDN rule: an instance is labelled if it has this many valid depth pixels
    handle_min_pixels: int = 16  # a mug handle with fewer visible pixels counts as hidden
    n_model_points: int = 1024  # points per model in obj_models/<split>.pkl

    def validate(self) -> None:
        if self.frames_per_scene < 1:
            raise ValueError(f"frames_per_scene must be >= 1, got {self.frames_per_scene}")
        if self.min_valid_depth < 1 or self.handle_min_pixels < 1 or self.n_model_points < 1:
            raise ValueError("min_valid_depth, handle_min_pixels and n_model_points must be >= 1")
