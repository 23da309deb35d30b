"""The shipped models are found from a checkout, from a colcon install without symlinks, and via the env
var."""

import shutil
import subprocess
import sys
from pathlib import Path

import cleanpose_core.shipped as shipped

REPO = Path(__file__).resolve().parents[1]


def test_checkout_models_folder_and_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv("CLEANPOSE_MODELS_DIR", raising=False)
    assert shipped.models_dir() == REPO / "models"
    monkeypatch.setenv("CLEANPOSE_MODELS_DIR", str(tmp_path))
    assert shipped.shipped_file("x.pt") == tmp_path / "x.pt"


def test_colcon_install_layout_finds_share_models(tmp_path):
    # <prefix>/lib/python3.X/site-packages/cleanpose_core next to <prefix>/share/cleanpose_ros/models, as
    # ament_python_install_package and CMakeLists.txt lay them out without --symlink-install.
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    (site / "cleanpose_core").mkdir(parents=True)
    shutil.copy(REPO / "cleanpose_core" / "shipped.py", site / "cleanpose_core" / "shipped.py")
    (site / "cleanpose_core" / "__init__.py").write_text("")
    models = tmp_path / "share" / "cleanpose_ros" / "models"
    models.mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-c", "from cleanpose_core.shipped import models_dir; print(models_dir())"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(out.stdout.strip()) == models
