"""Provenance of a result: what produced a folder of result pickles and the evaluation JSON scored from it.

`cleanpose predict` writes `provenance.json` beside its result pickles (`write_prediction_provenance`):

    format        PROVENANCE_FORMAT
    command       the command line (sys.argv); created_utc (ISO 8601)
    code          {commit: `git rev-parse HEAD` of this checkout or null, dirty: uncommitted changes or null}
    model         the pose model: {file, sha256, config (the resolved model config), n_points}, or the box-fit
                  baseline's {backend: box_fit, file (mean sizes), sha256}
    data          {root, split, domain, seed, scenes, depth_model, camera, rgb_effects}: seed and domain
                  read from the split's metadata (`<root>/<split>/config.yaml` of `cleanpose synth`); domain
                  null (and the rest null) when the split has none (REAL275, CAMERA25, ...)
    masks         gt (the split's ground-truth masks) | model (the segmenter of `estimator`)
    segmentation  with masks model: {segmenter, segmenter_weights: {file, sha256}, classifier: {file, sha256}}
                  (null where not used); null with gt masks
    readout       {pose_backend, pose_solver (keypoints | regression), point_samples, queue_sampling,
                  queue_seed}
    score         the result score rule: combined (detection score x pose confidence) | detection
    estimator     every EstimatorConfig field (segmenter, thresholds, weights files, ...)

`cleanpose eval --json` adds `"provenance": {"eval": {command, created_utc, code, results, protocol},
"predict": <that file, or null when the folder has none>}` to the evaluation JSON (`evaluation_provenance`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PROVENANCE_FILE", "PROVENANCE_FORMAT", "git_state", "file_sha256", "file_record",
           "split_metadata", "write_prediction_provenance", "read_prediction_provenance",
           "evaluation_provenance"]

PROVENANCE_FILE = "provenance.json"  # beside the result pickles of `cleanpose predict`
PROVENANCE_FORMAT = "cleanpose-provenance-1"
REPO = Path(__file__).resolve().parents[2]  # the checkout this code runs from (its commit is the code's)
# The settings that decide how a network output becomes a pose (a result's "readout").
READOUT = ("pose_backend", "pose_solver", "point_samples", "queue_sampling", "queue_seed")


def git_state(repo: str | Path = REPO) -> dict[str, Any]:
    """{commit: HEAD's sha1 or None, dirty: whether tracked or untracked files differ from it, or None} of
    `repo`; None where there is no git or no repository (an installed copy)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path) -> dict[str, str]:
    """{file (absolute path), sha256}: how a record names a model or data file."""
    return {"file": str(Path(path).resolve()), "sha256": file_sha256(path)}


def split_metadata(root: str | Path, split: str) -> dict[str, Any]:
    """{root, split, domain, seed, scenes, depth_model, camera, rgb_effects} of a test split; seed and domain
    come from the metadata `cleanpose synth` writes (`<root>/<split>/config.yaml`), null where there is
    none."""
    out: dict[str, Any] = {"root": str(Path(root).resolve()), "split": split, "domain": None, "seed": None,
                           "scenes": None, "depth_model": None, "camera": None, "rgb_effects": None}
    path = Path(root) / split / "config.yaml"
    try:
        meta = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        meta = None
    if isinstance(meta, dict) and isinstance(meta.get("config"), dict):
        cfg = meta["config"]
        camera = cfg.get("camera")
        out.update(domain="synthetic", seed=meta.get("seed"), scenes=meta.get("scenes"),
                   depth_model=cfg.get("depth_model"),
                   camera=camera.get("preset") if isinstance(camera, dict) else None,
                   rgb_effects=cfg.get("rgb_effects", False))
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_prediction_provenance(out: str | Path, *, estimator_config: Any, model: dict[str, Any],
                                data: dict[str, Any], masks: str, score: str,
                                argv: list[str] | None = None, segmentation: dict | None = None) -> Path:
    """Write `out/provenance.json` for the result pickles `cleanpose predict` writes there (see module
    docstring).

    Args:
        estimator_config: the `EstimatorConfig` (a dataclass) that produced the results.
        model: the model's entry ({file, sha256, config, n_points} or the box-fit one).
        data: `split_metadata` of the split.
        segmentation: the files behind predicted masks (`inference.predict.segmentation_provenance`).
    """
    cfg = dataclasses.asdict(estimator_config)
    record = {
        "format": PROVENANCE_FORMAT,
        "command": list(sys.argv if argv is None else argv),
        "created_utc": _now(),
        "code": git_state(),
        "model": model,
        "data": data,
        "masks": masks,
        "segmentation": segmentation,
        "readout": {k: cfg.get(k) for k in READOUT},
        "score": score,
        "estimator": cfg,
    }
    path = Path(out) / PROVENANCE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def read_prediction_provenance(results: str | Path) -> dict[str, Any] | None:
    """The `provenance.json` of a results folder, or None when it has none or it is unreadable."""
    path = Path(results) / PROVENANCE_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def evaluation_provenance(
    results: str | Path, protocol: str, argv: list[str] | None = None
) -> dict[str, Any]:
    """The `provenance` block of an evaluation JSON: how it was scored, and how its results were predicted."""
    return {
        "eval": {
            "command": list(sys.argv if argv is None else argv),
            "created_utc": _now(),
            "code": git_state(),
            "results": str(Path(results).resolve()),
            "protocol": protocol,
        },
        "predict": read_prediction_provenance(results),
    }
