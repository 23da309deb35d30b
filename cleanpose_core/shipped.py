"""Where the shipped self-trained models live, in every way this package is installed.

- a source checkout or `pip install -e .`: `<repo>/models/`;
- a colcon build without `--symlink-install`: the package is copied to `<prefix>/lib/pythonX.Y/site-packages/`
  and CMakeLists.txt installs the models to `<prefix>/share/cleanpose_ros/models/`;
- anywhere else: set `CLEANPOSE_MODELS_DIR`.
The first folder that exists wins; the environment variable, when set, is the only candidate.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["models_dir", "shipped_file"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def models_dir() -> Path:
    env = os.environ.get("CLEANPOSE_MODELS_DIR")
    if env:
        return Path(env)
    checkout = _PACKAGE_DIR.parent / "models"
    if checkout.is_dir() or len(_PACKAGE_DIR.parents) < 4:
        return checkout
    # <prefix>/lib/pythonX.Y/site-packages
    installed = _PACKAGE_DIR.parents[3] / "share" / "cleanpose_ros" / "models"
    return installed if installed.is_dir() else checkout


def shipped_file(name: str) -> Path:
    """Path of a shipped model file (it may not exist: callers say how to get it)."""
    return models_dir() / name
