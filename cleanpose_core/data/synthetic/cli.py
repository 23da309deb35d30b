"""`cleanpose synth`: render a synthetic split in the NOCS/DPDN layout (see generate.py for what is
written)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cleanpose_core.config import ConfigError, load_yaml

# Literal copies keep `cleanpose --help` from importing the engine; a test checks they match config.py.
DEPTH_MODEL_CHOICES = ("ideal", "noisy", "stereo")
CAMERA_CHOICES = ("real275", "d435", "d415", "azure_720p")
SHAPE_SOURCE_CHOICES = ("procedural", "meshes", "mixed")
SPLITS = ("train", "val", "test")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="render synthetic RGB-D scenes of the six NOCS categories in the NOCS/DPDN layout",
        description="Render synthetic tabletop RGB-D scenes (bottle, bowl, camera, can, laptop, mug) with "
        "ground-truth masks, NOCS maps and 9DoF labels in the NOCS/DPDN layout. Deterministic per seed; "
        "re-running resumes, skipping complete scenes.",
    )
    p.add_argument("--out", required=True, help="output root (the DPDN 'data/real'-like folder)")
    p.add_argument("--scenes", type=int, required=True, help="number of scenes to render")
    p.add_argument(
        "--split", choices=SPLITS, required=True,
        help="split; they hold disjoint instances (val: a validation pool for tuning, test: final tables)"
    )
    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument(
        "--frames-per-scene", type=int, default=None, help="viewpoints per scene (default: config, 4)"
    )
    p.add_argument("--config", default=None, help="YAML file with SynthConfig overrides")
    p.add_argument("--depth-model", choices=DEPTH_MODEL_CHOICES, default=None,
                   help="depth sensor model: ideal (exact depth, quantised to mm), noisy (per-pixel noise "
                   "model), stereo (simulated active-stereo camera; needs --camera d435 or d415). "
                   "Default: the config's, noisy")
    p.add_argument("--camera", choices=CAMERA_CHOICES, default=None,
                   help="camera preset: intrinsics and image size of the colour camera, and for d435/d415 "
                   "the stereo head (baseline, IR focal length). Default: the config's, real275")
    p.add_argument(
        "--meshes",
        default=None,
        metavar="DIR",
        help="imported meshes: a ShapeNetCore v2 folder (<synset>/<model>/models/model_normalized.obj), "
        "a NOCS obj_models folder ({train,val,real_train,real_test}) or a folder of OBJ/PLY/STL/GLB "
        "files with a meshes.yaml (see cleanpose_core/data/synthetic/meshes.py)",
    )
    p.add_argument("--shape-source", choices=SHAPE_SOURCE_CHOICES, default=None,
                   help="objects from the procedural shapes, the --meshes only, or both (mixed). "
                   "Default: meshes with --meshes, else the config's, procedural")
    p.add_argument("--rgb-effects", action="store_true", default=None,
                   help="colour-sensor and scene effects: exposure, white balance and gamma jitter, shot and "
                   "read noise, motion and defocus blur, JPEG; 1-3 lights of random colour temperature; "
                   "textured clutter and backgrounds (ranges: the config's `effects`). "
                   "Default: the config's, off")
    p.add_argument("--no-noise", action="store_true", help="alias of --depth-model ideal")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import generate_split

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("cleanpose.synth")
    try:
        cfg = load_yaml(SynthConfig, args.config) if args.config else SynthConfig()
        if args.frames_per_scene is not None:
            if args.frames_per_scene < 1:
                raise ConfigError(f"--frames-per-scene must be >= 1, got {args.frames_per_scene}")
            cfg.frames_per_scene = args.frames_per_scene
        if args.camera is not None:
            cfg.use_camera(args.camera)
        if args.no_noise:
            if args.depth_model not in (None, "ideal"):
                raise ConfigError(f"--no-noise means --depth-model ideal; it contradicts --depth-model "
                                  f"{args.depth_model}")
            cfg.depth_model = "ideal"
        elif args.depth_model is not None:
            cfg.depth_model = args.depth_model
        if args.rgb_effects:
            cfg.rgb_effects = True
        if args.meshes is not None:
            cfg.scene.meshes = str(Path(args.meshes).resolve())
        if args.shape_source is not None or args.meshes is not None:
            cfg.scene.shape_source = args.shape_source or "meshes"
        cfg.scene.validate()
        cfg.validate()  # the flags can make it inconsistent (stereo on a camera without a stereo head)
        summary = generate_split(args.out, args.split, args.scenes, args.seed, cfg, workers=args.workers,
                                 progress=not args.quiet)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    log.info(
        "%s: %d frames (%d with labelled objects) in %s; %d scenes rendered now; contact sheet: %s",
        summary.split, summary.frames, summary.valid_frames, summary.out_dir, summary.scenes_rendered,
        summary.contact_sheet,
    )
    return 0
