"""Synthetic category-level RGB-D data in the NOCS/DPDN layout (shapes, scenes, renderer, writer, CLI).

Entry points: `generate_split` (Python) and `cleanpose synth` (CLI). Modules:
shapes (procedural NOCS-frame meshes), scene (tabletop composer), render (open3d ray casting), depth_sensor
(the depth models: ideal, noisy = noise (per-pixel noise model), stereo = stereo (simulated active-stereo
camera)), rgb_sensor and scene_effects (`rgb_effects`: colour-sensor effects; coloured lights and textures),
writer (on-disk layout), contact_sheet, generate, config (also the camera presets).
Importing this package does not import open3d; only rendering needs it.
"""
