"""Synthetic category-level RGB-D data in the NOCS/DPDN layout (shapes, scenes, renderer, writer, CLI).

Entry points: `generate_split` (Python) and `cleanpose synth` (CLI). Modules:
shapes (procedural NOCS-frame meshes), scene (tabletop composer), render (open3d ray casting),
noise (depth-sensor model), writer (on-disk layout), contact_sheet, generate, config.
Importing this package does not import open3d; only rendering needs it.
"""
