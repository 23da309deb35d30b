"""`cleanpose synth`: render a synthetic split in the NOCS/DPDN layout (see generate.py for what is written)."""

from __future__ import annotations

import argparse
import logging

from cleanpose_core.config import ConfigError, load_yaml


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
    p.add_argument("--split", choices=("train", "test"), required=True, help="split; they hold disjoint instances")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--frames-per-scene", type=int, default=None, help="viewpoints per scene (default: config, 4)")
    p.add_argument("--config", default=None, help="YAML file with SynthConfig overrides")
    p.add_argument("--no-noise", action="store_true", help="exact depth (only quantised to mm)")
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
        if args.no_noise:
            cfg.noise.enabled = False
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
