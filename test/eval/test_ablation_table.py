"""scripts/ablation_table.py on hand-made result folders: the table's mean ± sd and the paired tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from test_paired import _result

from cleanpose_core.eval.results import save_result

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ablation_table.py"
KEYS = ("iou_50", "iou_75", "5deg_2cm", "5deg_5cm", "10deg_2cm", "10deg_5cm")


@pytest.fixture(scope="module")
def ablation_table():
    spec = importlib.util.spec_from_file_location("ablation_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, ap_10deg_5cm: float, good: int) -> str:
    """A result folder of 5 images x 4 objects where the first `good` objects (in image order) are within
    4 deg / 1 cm and the others 30 deg off, and its eval JSON with the given 10°5cm AP."""
    errors = [(4, 1) if i < good else (30, 1) for i in range(20)]
    for im in range(5):
        save_result(str(folder / f"results_{im:04d}.pkl"), _result(f"{im}.png", errors[4 * im:4 * im + 4]))
    report = {"overall": {k: 50.0 for k in KEYS} | {"10deg_5cm": ap_10deg_5cm}, "provenance": {"model": "x"}}
    folder.with_suffix(".json").write_text(json.dumps(report))
    return str(folder)


def test_table_and_paired_tests(tmp_path, ablation_table, capsys):
    s2, s5 = tmp_path / "synthetic_s2", tmp_path / "synthetic_s5"
    ref = [f"{_run(s2 / f'r{i}', ap, 16)}+{_run(s5 / f'r{i}', ap, 16)}" for i, ap in enumerate((70, 72, 71))]
    other = [f"{_run(s2 / f'o{i}', ap, 6)}+{_run(s5 / f'o{i}', ap, 6)}" for i, ap in enumerate((60, 63, 61))]
    out = tmp_path / "ablation.json"
    assert ablation_table.main(["--json", str(out), "A=" + ",".join(ref), "B=" + ",".join(other)]) == 0
    printed = capsys.readouterr().out
    assert "| A | 3 |" in printed and "71.0 ± 1.0" in printed and "61.3 ± 1.5" in printed
    report = json.loads(out.read_text())
    test = report["tests"]["A vs B: 10deg_5cm"]
    # 3 seeds x 2 splits x 20 objects; A right on 16 per folder, B on 6 of the same: 10 discordant each
    assert (test["objects"], test["reference_only"], test["other_only"]) == (120, 60, 0)
    assert test["mcnemar_p"] < 1e-10 and test["success_difference_points"] == pytest.approx(50.0)
    assert test["ap_difference_mean"] == pytest.approx(9.67, abs=0.01) and 0 < test["seed_ttest_p"] < 0.05
    assert report["tests"]["A vs B: 5deg_2cm"]["seed_ttest_p"] is None  # identical APs: no t statistic
    assert "p=n/a" in printed
    assert len(report["provenance"]) == 12 and "command" in report


def test_rows_with_different_run_counts_are_refused(tmp_path, ablation_table):
    a = _run(tmp_path / "s" / "a", 70, 10)
    with pytest.raises(SystemExit):
        ablation_table.main([f"A={a},{a}", f"B={a}"])
