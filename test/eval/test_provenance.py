"""Provenance of result files (issue 18 item 2): `cleanpose predict` records how its results were made, and
`cleanpose eval --json` carries that record, its own command and the commit into the evaluation JSON."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cleanpose_core.cli import main
from cleanpose_core.config import to_dict
from cleanpose_core.eval.provenance import (PROVENANCE_FILE, git_state, read_prediction_provenance,
                                            split_metadata)

REPO = Path(__file__).resolve().parents[2]


def _head() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def test_git_state_names_the_checkout_commit_or_null_outside_a_repository(tmp_path):
    state = git_state()
    if _head() is None:
        pytest.skip("no git checkout")
    assert state["commit"] == _head() and isinstance(state["dirty"], bool)
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_split_metadata_reads_seed_and_domain_of_a_synthetic_split_and_is_null_elsewhere(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "config.yaml").write_text(yaml.safe_dump(
        {"split": "test", "seed": 7, "scenes": 60,
         "config": {"camera": {"preset": "real275"}, "depth_model": "noisy", "rgb_effects": True}}))
    meta = split_metadata(tmp_path, "test")
    assert meta == {
        "root": str(tmp_path.resolve()),
        "split": "test",
        "domain": "synthetic",
        "seed": 7,
        "scenes": 60,
        "depth_model": "noisy",
        "camera": "real275",
        "rgb_effects": True,
    }
    real = split_metadata(tmp_path, "real_test")  # a REAL275 split: no generator metadata
    assert real["domain"] is None and real["seed"] is None and real["split"] == "real_test"
    assert read_prediction_provenance(tmp_path) is None


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import generate_split

    root = tmp_path_factory.mktemp("split")
    generate_split(root, "test", 1, 5, SynthConfig(frames_per_scene=1), progress=False, contact_sheet_rows=0)
    return root


def test_predict_and_eval_record_model_data_readout_command_and_commit(tmp_path, tiny_split):
    from cleanpose_core.inference.estimator import SHIPPED_POSE_MODEL
    from cleanpose_core.io.pose_model import load_pose_model

    results, report = tmp_path / "results", tmp_path / "eval.json"
    predict_argv = [
        "predict",
        "--data",
        str(tiny_split),
        "--out",
        str(results),
        "--masks",
        "gt",
        "--device",
        "cpu",
        "--pose-solver",
        "regression",
        "--score",
        "detection",
        "--queue-sampling",
        "per_frame",
    ]
    assert main(predict_argv) == 0
    assert main(["eval", "--results", str(results), "--json", str(report)]) == 0

    record = json.loads(report.read_text())
    assert set(record) == {"overall", "per_category", "provenance"}
    pred = record["provenance"]["predict"]
    assert pred == json.loads((results / PROVENANCE_FILE).read_text())
    assert pred["command"] == ["cleanpose", *predict_argv]
    model_bytes = Path(SHIPPED_POSE_MODEL).read_bytes()
    assert pred["model"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert pred["model"]["file"] == str(Path(SHIPPED_POSE_MODEL).resolve())
    model, n_points = load_pose_model(SHIPPED_POSE_MODEL, "cpu")
    assert pred["model"]["config"] == json.loads(json.dumps(to_dict(model.cfg)))
    assert pred["model"]["n_points"] == n_points
    assert {k: pred["data"][k] for k in ("domain", "seed", "split", "scenes")} == \
        {"domain": "synthetic", "seed": 5, "split": "test", "scenes": 1}
    assert pred["masks"] == "gt" and pred["score"] == "detection"
    assert pred["readout"] == {"pose_backend": "cleanpose", "pose_solver": "regression",
                               "point_samples": 1, "queue_sampling": "per_frame", "queue_seed": 0}
    assert pred["estimator"]["segmenter"] == "external"  # --masks gt: the split's masks, no segmenter
    assert pred["segmentation"] is None

    ev = record["provenance"]["eval"]
    assert ev["command"] == ["cleanpose", "eval", "--results", str(results), "--json", str(report)]
    assert ev["protocol"] == "nocs" and ev["results"] == str(results.resolve())
    for code in (pred["code"], ev["code"]):
        assert code["commit"] == _head()
        assert code["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", code["commit"])


def test_box_fit_results_record_the_mean_sizes_file(tmp_path, tiny_split):
    from cleanpose_core.inference.estimator import SHIPPED_MEAN_SIZES

    results = tmp_path / "box"
    assert (
        main(["predict", "--data", str(tiny_split), "--out", str(results), "--pose-backend", "box_fit"]) == 0
    )
    model = read_prediction_provenance(results)["model"]
    assert model == {"backend": "box_fit", "file": str(Path(SHIPPED_MEAN_SIZES).resolve()),
                     "sha256": hashlib.sha256(Path(SHIPPED_MEAN_SIZES).read_bytes()).hexdigest()}


def test_predicted_masks_record_the_segmenter_and_classifier_files(tmp_path, tiny_split):
    """Shipped segmentation files are replaced in place when retrained: the record must hash them."""
    from cleanpose_core.segmentation.maskrcnn import DEFAULT_WEIGHTS
    from cleanpose_core.segmentation.rescoring import DEFAULT_CLASSIFIER

    def entry(path) -> dict:
        path = Path(path)
        return {"file": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    for weight, classifier in (("0.5", entry(DEFAULT_CLASSIFIER)), ("0", None)):
        results = tmp_path / f"weight_{weight}"
        argv = ["predict", "--data", str(tiny_split), "--out", str(results), "--pose-backend", "box_fit",
                "--masks", "model", "--category-weight", weight, "--device", "cpu", "--runtime", "eager"]
        assert main(argv) == 0
        assert read_prediction_provenance(results)["segmentation"] == {
            "segmenter": "maskrcnn", "segmenter_weights": entry(DEFAULT_WEIGHTS), "classifier": classifier}
