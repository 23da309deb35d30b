"""scripts/prune_venvs.sh: setup.sh removes the default environments of checkouts that are gone, no others."""

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prune_venvs.sh"


def _venv(cache: Path, name: str, checkout: Path | None) -> Path:
    venv = cache / name
    (venv / "bin").mkdir(parents=True)
    if checkout is not None:
        (venv / ".cleanpose-checkout").write_text(f"{checkout}\n")
    return venv


def test_only_environments_of_gone_or_relinked_checkouts_are_removed(tmp_path):
    cache = tmp_path / "cache"
    live = tmp_path / "live"
    live.mkdir()
    kept = _venv(cache, "venv-live", live)
    (live / ".venv").symlink_to(kept)
    gone = _venv(cache, "venv-gone", tmp_path / "deleted-clone")  # the clone was deleted
    moved = tmp_path / "moved"
    moved.mkdir()
    relinked = _venv(cache, "venv-relinked", moved)
    (moved / ".venv").symlink_to(kept)  # that checkout now uses another environment
    unrecorded = _venv(cache, "venv-old", None)  # made before checkouts were recorded
    out = subprocess.run(["bash", str(SCRIPT), str(cache)], capture_output=True, text=True, check=True).stdout
    assert kept.is_dir() and unrecorded.is_dir()
    assert not gone.exists() and not relinked.exists()
    assert "venv-gone" in out and "venv-relinked" in out and "venv-live" not in out


def test_an_empty_cache_is_fine(tmp_path):
    assert subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True).returncode == 0
