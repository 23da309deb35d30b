"""Result files (round trip, errors naming the file), the JSON contract, and `cleanpose eval` end to end."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from cleanpose_core.cli import main as cleanpose_main
from cleanpose_core.eval.metrics import evaluate
from cleanpose_core.eval.protocol import NOCS
from cleanpose_core.eval.plots import plot_ap_curves
from cleanpose_core.eval.report import METRIC_KEYS, build_report
from cleanpose_core.eval.results import (
    REQUIRED_KEYS,
    ResultFileError,
    find_result_files,
    load_result_file,
    load_results,
    poses_to_rts,
    save_result,
    validate_result,
)

from synthetic_sets import random_result_set


@pytest.fixture
def result_dir(tmp_path):
    for i, d in enumerate(random_result_set(seed=5, num_images=12)):
        save_result(str(tmp_path / f"results_{i:03d}.pkl"), d, num_categories=6)
    return tmp_path


def test_save_and_load_round_trip_keeps_arrays_and_dtypes(tmp_path):
    d = random_result_set(seed=1, num_images=1, dtype=np.float32)[0]
    d["image_path"] = "scene_1/0000"
    save_result(str(tmp_path / "results_0.pkl"), d, num_categories=6)
    (r,) = load_result_file(str(tmp_path / "results_0.pkl"), 6)
    assert r.pred_RTs.dtype == np.float32
    np.testing.assert_array_equal(r.gt_RTs, d["gt_RTs"])
    np.testing.assert_array_equal(r.pred_scores, d["pred_scores"])
    assert r.image_path == "scene_1/0000"
    with open(tmp_path / "results_0.pkl", "rb") as f:
        assert set(pickle.load(f)) >= {
            "gt_class_ids",
            "gt_RTs",
            "pred_RTs",
            "pred_scores",
            "gt_handle_visibility",
        }


def _good():
    return random_result_set(seed=2, num_images=1, max_objects=3, p_detect=1.0, p_false_positive=0.0)[0]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("pred_scores"), "missing key"),
        (lambda d: d.__setitem__("gt_RTs", d["gt_RTs"][:, :3]), "'gt_RTs' has shape"),
        (lambda d: d.__setitem__("pred_scales", np.ones((len(d["pred_class_ids"]) + 1, 3))), "'pred_scales'"),
        (lambda d: d["pred_RTs"].__setitem__((0, 0, 3), np.nan), "non-finite"),
        (lambda d: d["gt_RTs"].__setitem__((0, 3, 3), 2.0), "last row"),
        (lambda d: d["pred_class_ids"].__setitem__(0, 7), "outside 1..6"),
        (lambda d: d["gt_class_ids"].__setitem__(0, 0), "outside 1..6"),
        (lambda d: d.__setitem__("gt_handle_visibility", np.ones(9)), "'gt_handle_visibility'"),
    ],
)
def test_malformed_result_files_raise_an_error_naming_the_file(tmp_path, mutate, message):
    d = _good()
    mutate(d)
    path = tmp_path / "results_bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(d, f)
    with pytest.raises(ResultFileError, match=message) as info:
        load_result_file(str(path), 6)
    assert "results_bad.pkl" in str(info.value)


def test_missing_handle_visibility_defaults_to_visible_and_empty_images_load():
    d = _good()
    d.pop("gt_handle_visibility")
    assert np.all(validate_result(d, 6).gt_handle_visibility == 1)
    empty = {k: [] for k in REQUIRED_KEYS}
    r = validate_result(empty, 6, "empty.pkl")
    assert r.gt_RTs.shape == (0, 4, 4) and r.pred_scales.shape == (0, 3)


def test_result_discovery_follows_the_official_layouts(tmp_path):
    for scene in ("test_scene2", "test_scene1"):
        (tmp_path / scene).mkdir()
        save_result(str(tmp_path / scene / "000.pkl"), _good())
    files = find_result_files(str(tmp_path), "housecat6d")
    assert [f.split("/")[-2] for f in files] == ["test_scene1", "test_scene2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultFileError, match="no result pickles"):
        find_result_files(str(tmp_path / "empty"), "nocs")
    with pytest.raises(ResultFileError, match="not a directory"):
        find_result_files(str(tmp_path / "missing"), "nocs")


def test_poses_to_rts_matches_the_result_file_convention():
    R = np.eye(3)[None]
    rts, scales = poses_to_rts(R, np.array([[0.1, 0.2, 0.3]]), np.array([[0.3, 0.0, 0.4]]))
    np.testing.assert_allclose(rts[0, :3, :3], 0.5 * np.eye(3))
    np.testing.assert_allclose(rts[0, :3, 3], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(scales[0], [0.6, 0.0, 0.8])


def test_report_json_has_exactly_the_contract_keys(result_dir):
    report = build_report(evaluate(load_results(str(result_dir), 6), NOCS))
    assert set(report) == {"overall", "per_category"}
    assert set(report["per_category"]) == set(NOCS.categories)
    for values in [report["overall"], *report["per_category"].values()]:
        assert tuple(values) == METRIC_KEYS
        assert all(v is None or 0.0 <= v <= 100.0 for v in values.values())


def test_cli_eval_writes_json_table_and_plots(result_dir, tmp_path, capsys):
    out_json, plots = tmp_path / "out" / "eval.json", tmp_path / "plots"
    code = cleanpose_main(
        ["eval", "--results", str(result_dir), "--json", str(out_json), "--plots", str(plots)]
    )
    assert code == 0
    report = json.loads(out_json.read_text())
    expected = build_report(evaluate(load_results(str(result_dir), 6), NOCS))
    assert report["overall"] == pytest.approx(expected["overall"])
    assert report["per_category"]["mug"] == pytest.approx(expected["per_category"]["mug"])
    assert "IoU75*" in capsys.readouterr().out
    for name in ("ap_vs_iou", "ap_vs_catre_iou", "ap_vs_rotation", "ap_vs_translation", "ap_curves"):
        assert (plots / f"{name}.png").stat().st_size > 10_000


def test_cli_eval_reports_a_bad_file_by_name(tmp_path, capsys):
    with open(tmp_path / "results_007.pkl", "wb") as f:
        pickle.dump({"gt_class_ids": np.array([1])}, f)
    assert cleanpose_main(["eval", "--results", str(tmp_path), "--json", str(tmp_path / "o.json")]) == 2
    assert "results_007.pkl" in capsys.readouterr().err


def test_plots_need_the_fine_sweeps(result_dir, tmp_path):
    with pytest.raises(ValueError, match="fine=True"):
        plot_ap_curves(evaluate(load_results(str(result_dir), 6), NOCS), str(tmp_path))
