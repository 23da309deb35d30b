"""Active-stereo depth camera simulation (`depth_model: stereo`), in the manner of the Intel RealSense D400.

Per viewpoint of the colour camera:
1. ray-cast the scene from a rectified left/right infrared camera pair one baseline apart (the left one at the
   preset's offset from the colour camera), and from the dot projector (a low-resolution depth map of what it
   lights, for its shadows);
2. IR image = surface IR reflectance x (ambient light x Lambert term + projected dots); the dots are a fixed
   random image in the PROJECTOR's image plane looked up at each hit point's projection into it, so both
   cameras see the same dots on the surfaces, dimmed by 1/distance^2 and the incidence angle, and absent in
   the projector's shadow; auto exposure, shot and read noise, 8 bits;
3. disparity with OpenCV's semi-global block matcher (3-way, left-right consistency check, uniqueness ratio,
   speckle filter), 1/16-pixel steps, and depth = f B / disparity in the left IR frame;
4. registration into the colour camera: each valid IR pixel is back-projected, moved into the colour frame and
   its footprint splatted into the colour image with a z-buffer (nearest surface wins; holes stay 0), as the
   RealSense SDK's align-to-colour does.

Nothing is painted on: the artefacts come from the steps above. Surfaces seen by the left camera but not the
right one (left of foreground objects), or by the colour camera but not the left IR one, get no depth
(occlusion shadows); block aggregation carries foreground disparity over background pixels next to edges (edge
fattening); a fixed disparity noise becomes depth noise sigma_z = z^2 sigma_d / (f B); parts narrower than the
matching window (handles, thin rods) take the background's disparity or fail the checks; dark surfaces return
few photons and fail the uniqueness check.

IR reflectance is the square root of the luminance of each part's base colour (a guess: most dyes reflect more
in the near IR than in the visible, carbon-black plastics still little); the procedural patterns are left out,
as printed inks mostly are in the near IR, and because evaluating them on two more images would double the
cost.

Known limits: SGBM's sub-pixel step pulls disparities towards whole pixels by up to ~0.15 px (pixel locking;
measured on a slanted plane, 0.17 px RMS in all against the D400's ~0.08 px), so far slanted surfaces show
ripples one disparity step apart (75 mm at 1.2 m for the D435); the projector's position between the imagers
is assumed (midpoint); only the IR pixels the colour camera can use are simulated (see StereoCamera).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from cleanpose_core.data.synthetic.config import StereoConfig
from cleanpose_core.data.synthetic.render import SceneRenderer
from cleanpose_core.geometry.camera import Intrinsics

_PATTERN_SEED = 20170901  # the projector's dot pattern is a fixed property of the hardware, not of a scene
_FAR = 1.0e6  # metres, stands for "nothing hit"
_EMITTER_MARGIN = 32  # pixels the projector image extends beyond the IR image on each side


@dataclass
class StereoFrame:
    """One simulated capture; IR images and left-IR maps are (H_ir, W_ir), depth_mm is in the colour camera.

    Attributes:
        depth_mm: (H, W) uint16 depth registered to the colour camera, millimetres, 0 = missing.
        depth_ir: (H_ir, W_ir) float32 depth in the left IR camera, metres, 0 = missing.
        disparity: (H_ir, W_ir) float32 disparity in pixels, 0 = invalid.
        ir_left, ir_right: (H_ir, W_ir) uint8 infrared images.
    Unless the camera was built with `full_frame`, only the part of the IR image the colour camera sees (plus
    margins) is simulated; the rest of these maps is 0.
    """

    depth_mm: np.ndarray
    depth_ir: np.ndarray
    disparity: np.ndarray
    ir_left: np.ndarray
    ir_right: np.ndarray


@functools.lru_cache(maxsize=8)
def dot_pattern(width: int, height: int, fill: float, blur: float) -> np.ndarray:
    """(height, width) float32 projector image: random dots of peak ~1, Gaussian-blurred by `blur` pixels."""
    rng = np.random.default_rng(_PATTERN_SEED)
    dots = (rng.random((height, width)) < fill).astype(np.float32)
    if blur > 0:
        dots = cv2.GaussianBlur(dots, (0, 0), blur)
        # Scale so that one isolated dot peaks at 1 (blurring spreads its energy over a few pixels).
        impulse = np.zeros((9, 9), np.float32)
        impulse[4, 4] = 1.0
        dots /= cv2.GaussianBlur(impulse, (0, 0), blur)[4, 4]
    dots.setflags(write=False)
    return dots


def _grid_dirs(width: int, height: int, f: float, cx: float, cy: float) -> np.ndarray:
    """(height * width, 3) float32 camera-frame ray directions through integer pixels, with unit z."""
    uu, vv = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.stack([(uu - cx) / f, (vv - cy) / f, np.ones_like(uu)], -1).reshape(-1, 3).astype(np.float32)


def register_to_colour(depth_ir: np.ndarray, f: float, cx: float, cy: float, offset: np.ndarray,
                       K: Intrinsics) -> np.ndarray:
    """Left-IR depth (H_ir, W_ir) metres -> (K.height, K.width) float32 depth of the colour camera, 0 = hole.

    `offset` (3,) is the colour camera centre in the left-IR frame (no rotation between them). Every IR pixel
    covers [u - 0.5, u + 0.5] x [v - 0.5, v + 0.5]; the corners of that footprint are projected into the
    colour image and every colour pixel between the rounded corners receives the depth, the nearest one where
    footprints overlap. Colour pixels no IR pixel covers stay 0.
    """
    v, u = np.nonzero(depth_ir > 0)
    z = depth_ir[v, u].astype(np.float64)
    X = (u - cx) * z / f - offset[0]
    Y = (v - cy) * z / f - offset[1]
    Z = z - offset[2]
    front = Z > 1e-6
    X, Y, Z, z = X[front], Y[front], Z[front], z[front]
    uc = K.fx * X / Z + K.cx
    vc = K.fy * Y / Z + K.cy
    hx = 0.5 * K.fx / f * z / Z  # half footprint in colour pixels
    hy = 0.5 * K.fy / f * z / Z
    # Inclusive, rounded bounds: neighbouring footprints overlap by up to a pixel (the nearer depth wins), so
    # depth noise, which moves each footprint a little, does not open cracks between them.
    u0, u1 = np.rint(uc - hx), np.rint(uc + hx)
    v0, v1 = np.rint(vc - hy), np.rint(vc + hy)
    zbuf = np.full(K.height * K.width, np.inf, np.float32)
    Z32 = Z.astype(np.float32)
    kx = int((u1 - u0).max()) + 1 if len(u0) else 0
    ky = int((v1 - v0).max()) + 1 if len(v0) else 0
    for dy in range(ky):
        j = v0 + dy
        ok_j = (j <= v1) & (j >= 0) & (j < K.height)
        for dx in range(kx):
            i = u0 + dx
            ok = ok_j & (i <= u1) & (i >= 0) & (i < K.width)
            np.minimum.at(zbuf, (j[ok] * K.width + i[ok]).astype(np.int64), Z32[ok])
    return np.where(np.isfinite(zbuf), zbuf, 0.0).astype(np.float32).reshape(K.height, K.width)


class StereoCamera:
    """Simulates an active-stereo depth camera rigidly attached to the colour camera of a SceneRenderer.

    Build once per scene (after the renderer), then call `capture(R_wc, C, rng)` with the colour camera pose.
    """

    def __init__(self, renderer: SceneRenderer, cfg: StereoConfig, full_frame: bool = False):
        """`full_frame`: simulate the whole IR image, not only the part the colour camera sees (slower)."""
        missing = cfg.head_missing()
        if missing:
            raise ValueError(f"stereo camera geometry missing: stereo.{', stereo.'.join(missing)}")
        self.renderer = renderer
        self.cfg = cfg
        self.K = renderer.K
        self.W, self.H = int(cfg.ir_size[0]), int(cfg.ir_size[1])
        self.f, self.B = float(cfg.ir_focal), float(cfg.baseline)
        self.cx, self.cy = (self.W - 1) / 2.0, (self.H - 1) / 2.0
        self.offset = np.asarray(cfg.colour_offset, np.float64)
        self.max_disp = int(cfg.max_disparity)
        # IR pixels whose depth can land in the colour image (all of them for a full frame). The D435's IR
        # view is much wider than its colour view: simulating only this window halves the cost.
        self.c0, self.c1, self.r0, self.r1 = (0, self.W, 0, self.H) if full_frame else self._colour_window()
        # The right image also needs the max_disp columns left of the window (where the left window's points
        # appear in it). The matcher never matches the first numDisparities columns of its input, so the
        # buffers start with empty columns up to that many: beyond the sensor's left edge the right camera has
        # no pixels, and matches that would need them are rejected after matching, which leaves the sensor's
        # own invalid band (f B / Z pixels wide) at the left edge.
        self.cs = max(0, self.c0 - self.max_disp)
        self.lead = self.max_disp - (self.c0 - self.cs)
        self.hb, self.wb = self.r1 - self.r0, self.lead + self.c1 - self.cs  # matcher buffer size
        uu, vv = np.meshgrid(np.arange(self.cs, self.c1, dtype=np.float32),
                             np.arange(self.r0, self.r1, dtype=np.float32))
        self._dirs = np.stack([(uu - self.cx) / self.f, (vv - self.cy) / self.f, np.ones_like(uu)], -1)
        self._dirs = self._dirs.reshape(-1, 3).astype(np.float32)
        self._inv_norm = (1.0 / np.linalg.norm(self._dirs, axis=1)).astype(np.float32)
        # The projector: a pinhole with the IR focal length and a slightly wider view than the IR cameras (as
        # the D400 projectors have); its shadow map is cast at half resolution.
        m = _EMITTER_MARGIN
        self._ecx, self._ecy = self.cx + m, self.cy + m
        self._pattern = dot_pattern(self.W + 2 * m, self.H + 2 * m, cfg.dot_fill, cfg.dot_blur)
        self._sw, self._sh = (self.W + 2 * m + 1) // 2, (self.H + 2 * m + 1) // 2
        self._sdirs = _grid_dirs(self._sw, self._sh, self.f / 2, self._ecx / 2, self._ecy / 2)
        bs = cfg.block_size
        # P1/P2 as OpenCV's documentation suggests for one channel (8 and 32 x window area).
        self._sgbm = cv2.StereoSGBM_create(
            minDisparity=0, numDisparities=cfg.max_disparity, blockSize=bs, P1=8 * bs * bs, P2=32 * bs * bs,
            disp12MaxDiff=cfg.lr_max_diff, uniquenessRatio=cfg.uniqueness_ratio,
            speckleWindowSize=cfg.speckle_window, speckleRange=cfg.speckle_range,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)

    def _colour_window(self) -> tuple[int, int, int, int]:
        """IR columns c0:c1 and rows r0:r1 onto which the colour image maps at depths >= MinZ, + margins."""
        K, o = self.K, self.offset
        z_min = max(self.cfg.min_depth, self.f * self.B / self.max_disp)  # nearer cannot be measured
        us, vs = [], []
        for uc in (-0.5, K.width - 0.5):
            for vc in (-0.5, K.height - 0.5):
                for z in (z_min, 1e9):  # the map is affine at a fixed depth and monotonic in 1 / z
                    x, y = (uc - K.cx) / K.fx * z + o[0], (vc - K.cy) / K.fy * z + o[1]
                    us.append(self.f * x / (z + o[2]) + self.cx)
                    vs.append(self.f * y / (z + o[2]) + self.cy)
        # The matcher aggregates costs over its window and along image paths: keep some context around.
        margin = self.cfg.block_size // 2 + 8
        c0 = max(0, int(math.floor(min(us))) - margin)
        c1 = min(self.W, int(math.ceil(max(us))) + margin + 1)
        r0 = max(0, int(math.floor(min(vs))) - margin)
        r1 = min(self.H, int(math.ceil(max(vs))) + margin + 1)
        return c0, c1, r0, r1

    def capture(self, R_wc: np.ndarray, C: np.ndarray, rng: np.random.Generator) -> StereoFrame:
        """Simulate the sensor for colour-camera pose (R_wc, C); `rng` draws the IR image noise."""
        left, right = self.ir_images(R_wc, C, rng)
        disp16 = self._sgbm.compute(left, right)[:, self.max_disp:]  # IR columns c0:c1
        disp = disp16.astype(np.float32) / 16.0
        # A match left of the right image's first column is outside the sensor: no data there.
        inside = np.arange(self.c0, self.c1, dtype=np.float32)[None, :] - disp >= -0.5
        valid = (disp16 > 0) & inside
        window = (slice(self.r0, self.r1), slice(self.c0, self.c1))
        disparity = np.zeros((self.H, self.W), np.float32)
        disparity[window] = np.where(valid, disp, 0.0)
        depth_ir = np.zeros_like(disparity)
        ok = disparity > 0
        depth_ir[ok] = self.f * self.B / disparity[ok]
        depth_ir[(depth_ir < self.cfg.min_depth) | (depth_ir > self.cfg.max_depth)] = 0.0
        depth = register_to_colour(depth_ir, self.f, self.cx, self.cy, self.offset, self.K)
        depth_mm = np.clip(np.rint(depth * 1000.0), 0, np.iinfo(np.uint16).max).astype(np.uint16)
        ir = np.zeros((2, self.H, self.W), np.uint8)
        ir[0][self.r0:self.r1, self.cs:self.c1] = left[:, self.lead:]
        ir[1][self.r0:self.r1, self.cs:self.c1] = right[:, self.lead:]
        return StereoFrame(depth_mm, depth_ir, disparity, ir[0], ir[1])

    def ir_images(self, R_wc: np.ndarray, C: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Left and right uint8 IR images of the simulated window, as the matcher takes them (hb, wb)."""
        cfg = self.cfg
        R64 = np.asarray(R_wc, np.float64)
        C_left = np.asarray(C, np.float64) - R64 @ self.offset
        C_right = C_left + self.B * R64[:, 0]
        C_emit = C_left + float(cfg.emitter_offset) * R64[:, 0]
        R = R64.astype(np.float32)
        d_w = _times(self._dirs, R.T)
        n = len(d_w)
        rays = np.empty((2 * n + len(self._sdirs), 6), np.float32)
        rays[:n, :3], rays[n:2 * n, :3], rays[2 * n:, :3] = C_left, C_right, C_emit
        rays[:n, 3:] = d_w
        rays[n:2 * n, 3:] = d_w
        rays[2 * n:, 3:] = _times(self._sdirs, R.T)
        hit = self.renderer.cast_rays(rays)
        t_all = hit["t_hit"]
        # Projector depth map (unit-z rays: t is the depth in the projector frame).
        shadow = np.where(np.isfinite(t_all[2 * n:]), t_all[2 * n:], _FAR).astype(np.float32)
        shadow = shadow.reshape(self._sh, self._sw)

        # Both cameras' hits at once; inside the room every ray hits something, misses are masked anyway.
        t = t_all[:2 * n]
        missed = ~np.isfinite(t)
        t = np.where(missed, 0.0, t).astype(np.float32)
        gid = np.where(missed, 0, hit["geometry_ids"][:2 * n]).astype(np.int64)
        prim = np.where(missed, 0, hit["primitive_ids"][:2 * n]).astype(np.int64)
        points = np.empty((2 * n, 3), np.float32)
        np.multiply(t[:n, None], d_w, out=points[:n])
        np.multiply(t[n:, None], d_w, out=points[n:])
        points[:n] += C_left.astype(np.float32)
        points[n:] += C_right.astype(np.float32)
        normal = hit["primitive_normals"][:2 * n]
        cos_view = np.empty(2 * n, np.float32)
        cos_view[:n] = np.einsum("ij,ij->i", normal[:n], d_w)
        cos_view[n:] = np.einsum("ij,ij->i", normal[n:], d_w)
        np.abs(cos_view, out=cos_view)
        cos_view[:n] *= self._inv_norm
        cos_view[n:] *= self._inv_norm
        rho = np.sqrt(np.clip(self.renderer.base_luma(gid, prim), 0.0, 1.0))
        # Where each point falls in the projector image, and whether the projector sees it.
        ray_e = points - C_emit.astype(np.float32)
        dist2 = np.einsum("ij,ij->i", ray_e, ray_e)
        q = _times(ray_e, R)  # projector frame (same orientation as the cameras)
        qz = q[:, 2]
        ahead = qz > 1e-6
        inv_z = np.float32(self.f) / np.where(ahead, qz, 1.0)
        ue = np.where(ahead, q[:, 0] * inv_z + np.float32(self._ecx), -10.0).astype(np.float32)
        ve = (q[:, 1] * inv_z + np.float32(self._ecy)).astype(np.float32)
        dots = _sample(self._pattern, ue, ve, cv2.INTER_LINEAR, 0.0)
        z_lit = _sample(shadow, ue * 0.5, ve * 0.5, cv2.INTER_NEAREST, _FAR)
        lit = qz <= z_lit * 1.01 + 0.003  # tolerance for the coarse shadow map
        # Irradiance from the projector: dots x cos(incidence) / distance^2 = dots |n . r| / |r|^3.
        cos_e_over_d2 = np.abs(np.einsum("ij,ij->i", normal, ray_e)) / np.maximum(dist2, 0.0025) ** 1.5
        radiance = rho * (np.float32(cfg.ambient) * cos_view + dots * lit * cos_e_over_d2)
        radiance[missed] = 0.0

        # Auto exposure from the left image (both imagers share the exposure), then noise and 8 bits.
        sample = radiance[:n:7]
        level = float(np.percentile(sample, 95)) if sample.size else 0.0
        gain = np.float32(cfg.exposure_level / level) if level > 0 else np.float32(0.0)
        signal = radiance * gain
        sigma = np.sqrt(np.float32(cfg.read_noise) ** 2 + np.float32(cfg.shot_gain) * signal)
        signal += rng.standard_normal(signal.shape, dtype=np.float32) * sigma
        img = np.zeros((2, self.hb, self.wb), np.uint8)
        img[:, :, self.lead:] = np.clip(np.rint(signal), 0, 255).astype(np.uint8).reshape(2, self.hb, -1)
        return img[0], img[1]


def _times(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(N, 3) @ (3, 3) without BLAS: its threads spin on busy cores and made a frame 3x slower (measured)."""
    return np.einsum("ij,jk->ik", points, np.ascontiguousarray(M, dtype=points.dtype))


def _sample(image: np.ndarray, u: np.ndarray, v: np.ndarray, interpolation: int, border: float) -> np.ndarray:
    """Values of `image` at float pixel coordinates (u, v) (flat arrays), `border` outside."""
    n = len(u)
    side = max(1, int(math.ceil(math.sqrt(n))))
    pad = side * side - n  # cv2.remap takes 2-D maps of at most SHRT_MAX columns: fold the list into a square
    mu = np.concatenate([u, np.full(pad, -10.0, np.float32)]).reshape(side, side)
    mv = np.concatenate([v, np.full(pad, -10.0, np.float32)]).reshape(side, side)
    out = cv2.remap(image, mu, mv, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out.reshape(-1)[:n]
