"""Contact sheet: a PNG grid of colour, depth, instance mask and NOCS map for a few written frames.

It reads the frames back from disk with OpenCV (as the NOCS readers do), so it shows exactly what was written.
Given a reference depth per frame (generate.py passes the ideal depth when the written one comes from a sensor
model), that is shown right after the written depth, on the same colour scale, so the sensor's holes, edge
artefacts and noise can be compared with the true geometry of the same view. Likewise a reference colour image
(the same view rendered with `rgb_effects` off, when they are on) is shown right after the written colour.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

_PANEL = (320, 240)  # (width, height) of one panel


def _palette(n: int = 256) -> np.ndarray:
    """(n, 3) uint8 BGR colours, well separated for small ids; 255 (background) is black."""
    hues = (np.arange(n) * 47) % 180
    hsv = np.stack([hues, np.full(n, 200), np.full(n, 255)], -1).astype(np.uint8)[None]
    pal = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    pal[255] = 0
    return pal


def _depth_range(depth_mm: np.ndarray) -> tuple[float, float]:
    valid = depth_mm > 0
    return tuple(np.percentile(depth_mm[valid], [1, 99])) if valid.any() else (0.0, 1.0)


def _depth_panel(depth_mm: np.ndarray, lo: float, hi: float) -> np.ndarray:
    valid = depth_mm > 0
    norm = np.clip((depth_mm.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1)
    img = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    img[~valid] = 0  # missing depth shown black
    return img


def make_contact_sheet(data_root: str | Path, prefixes: list[str], path: str | Path,
                       reference_depth: dict[str, np.ndarray] | None = None, depth_title: str = "depth (mm)",
                       reference_title: str = "ideal depth (mm)",
                       reference_colour: dict[str, np.ndarray] | None = None, colour_title: str = "colour",
                       reference_colour_title: str = "colour, rgb effects off") -> Path:
    """Write a (len(prefixes) rows x 4 to 6 panels) PNG to `path` for frame prefixes relative to `data_root`.

    `reference_depth` maps every prefix to an (H, W) uint16 depth in mm shown next to the written one;
    `reference_colour` every prefix to an (H, W, 3) uint8 RGB image shown next to the written colour.
    """
    if not prefixes:
        raise ValueError("make_contact_sheet needs at least one frame prefix")
    for name, ref in (("reference_depth", reference_depth), ("reference_colour", reference_colour)):
        if ref is not None and set(prefixes) - set(ref):
            raise ValueError(f"{name} lacks {sorted(set(prefixes) - set(ref))}")
    data_root = Path(data_root)
    pal = _palette()
    rows = []
    colours = [colour_title] + ([reference_colour_title] if reference_colour is not None else [])
    titles = colours + [depth_title] + ([reference_title] if reference_depth is not None else [])
    titles += ["instance mask", "NOCS map"]
    header = np.full((28, _PANEL[0] * len(titles), 3), 255, np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(
            header, title, (i * _PANEL[0] + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA
        )
    rows.append(header)
    for prefix in prefixes:
        base = str(data_root / prefix)
        colour = cv2.imread(base + "_color.png", cv2.IMREAD_COLOR)
        depth = cv2.imread(base + "_depth.png", cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(base + "_mask.png", cv2.IMREAD_COLOR)
        coord = cv2.imread(base + "_coord.png", cv2.IMREAD_COLOR)
        if any(x is None for x in (colour, depth, mask, coord)):
            raise FileNotFoundError(f"frame {base} is incomplete")
        # The coord PNG holds BGR = (1 - z, y, x); shown as stored, so NOCS x reads as red.
        if reference_depth is not None:
            ref = reference_depth[prefix]
            if ref.shape != depth.shape:
                raise ValueError(f"reference depth of {prefix} is {ref.shape}, the written one {depth.shape}")
            lo, hi = _depth_range(ref)  # one scale for both, so equal colours mean equal depths
            depth_panels = [_depth_panel(depth, lo, hi), _depth_panel(ref, lo, hi)]
        else:
            depth_panels = [_depth_panel(depth, *_depth_range(depth))]
        panels = [colour]
        if reference_colour is not None:
            panels.append(reference_colour[prefix][:, :, ::-1])  # RGB -> BGR
        panels += [*depth_panels, pal[mask[:, :, 2]], coord]
        n_colour = len(colours)
        panels = [cv2.resize(p, _PANEL, interpolation=cv2.INTER_AREA if k < n_colour else cv2.INTER_NEAREST)
                  for k, p in enumerate(panels)]
        row = np.concatenate(panels, axis=1)
        cv2.putText(
            row, prefix, (6, _PANEL[1] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
        )
        rows.append(row)
    sheet = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write contact sheet {path}")
    return path
