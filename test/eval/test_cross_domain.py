"""scripts/evaluate_cross_domain.sh end to end, tiny: one scene (two views) in two domains, both mask modes,
the shipped models; then a second run that reuses the render cache and (CROSS_DOMAIN_REUSE=1) the
evaluations."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("open3d")  # the renderer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "evaluate_cross_domain.sh"
MODEL = REPO / "models" / "cleanpose_lite.pt"
DOMAINS = ("ideal", "stereo_d435")


def _run(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CROSS_DOMAIN_SCENES": "1", "CROSS_DOMAIN_DOMAINS": " ".join(DOMAINS),
           "CROSS_DOMAIN_DATA": str(tmp_path / "data"), "CROSS_DOMAIN_WORK": str(tmp_path / "work"),
           "CROSS_DOMAIN_OUT": str(tmp_path / "out"), "OMP_NUM_THREADS": "1", **extra}
    done = subprocess.run(["bash", str(SCRIPT), "2", f"lite={MODEL}"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_cross_domain_script_writes_evaluations_and_table(tmp_path):
    done = _run(tmp_path)
    out = tmp_path / "out"
    provenance = True  # `cleanpose eval --json` writes it (eval/provenance.py)
    for domain in DOMAINS:
        for label in ("gt_masks", "predicted_masks"):
            report = json.loads((out / f"lite_{domain}_s2_{label}.json").read_text())
            assert set(report["overall"]) >= {"iou_25", "iou_50", "10deg_5cm", "5deg_5cm", "5deg_2cm"}
            provenance = provenance and bool(report.get("provenance", {}).get("predict"))
            if provenance:
                assert report["provenance"]["predict"]["masks"] == ("gt" if label == "gt_masks" else "model")
    summary = json.loads((out / "summary_s2.json").read_text())
    assert summary["seed"] == 2 and summary["scenes"] == 1 and list(summary["domains"]) == list(DOMAINS)
    d435 = summary["domains"]["stereo_d435"]
    assert (d435["camera"], d435["depth_model"], d435["frames"]) == ("d435", "stereo", 2)
    assert d435["intrinsics"] == [610.3, 610.3, 323.51, 240.51] and d435["objects"] > 0
    assert summary["domains"]["ideal"]["camera"] == "real275"
    # predict ran with each split's own intrinsics
    for label in ("gt_masks", "predicted_masks"):
        assert f"stereo_d435, lite, {label}: predict (intrinsics 610.3 610.3 323.51 240.51)" in done.stdout
        real275 = "591.0125 590.16775 322.525 244.11084"
        assert f"ideal, lite, {label}: predict (intrinsics {real275})" in done.stdout
    assert set(summary["results"]["lite"]["ideal"]) == {"gt_masks", "predicted_masks"}
    table = (out / "table_s2.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| ideal", "| stereo_d435"))]
    assert len(rows) == 4 and all(len(r.split("|")) == 10 for r in rows), table  # 2 domains x 2 mask modes

    # Again: the render cache is reused (no scene rendered); the evaluations are kept (by their provenance).
    again = _run(tmp_path, CROSS_DOMAIN_REUSE="1")
    assert again.stdout.count("keeping") == (4 if provenance else 0), again.stdout[-3000:]
    assert "0 scenes rendered now" in again.stdout + again.stderr
    # A cache holding other than the requested scene count is refused (predict reads every rendered frame).
    refused = subprocess.run([sys.executable, str(REPO / "scripts" / "cross_domain.py"), "intrinsics",
                              str(tmp_path / "data" / "ideal_s2"), "--scenes", "3"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "holds 1 scenes" in refused.stderr
