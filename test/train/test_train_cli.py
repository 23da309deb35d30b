"""`cleanpose train / teacher / queue-init` through the real command line.

The end-to-end tests build a tiny synthetic dataset with the synthetic engine and train the lite model shrunk
further by `model_overrides`; they are skipped while the model, the readers or the synthetic engine are not
importable.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cleanpose_core.cli import main
from cleanpose_core.config import from_dict
from cleanpose_core.train.components import deep_merge
from cleanpose_core.train.queue_init import load_queue
from tiny_cleanpose import TINY

REPO = Path(__file__).resolve().parents[2]


def _have(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


needs_stack = pytest.mark.skipif(
    not _have("cleanpose_core.models.cleanpose", "cleanpose_core.models.losses", "cleanpose_core.data.nocs",
              "cleanpose_core.data.synthetic.generate"),
    reason="model, NOCS reader or synthetic engine not available yet")


def _cleanpose(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`cleanpose ...` in a fresh process (as a user runs it), from the repository root."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cleanpose_core.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_train_rejects_a_misspelt_config_key_with_exit_code_2(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("iteratons: 10\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "iteratons" in capsys.readouterr().err


def test_train_with_a_missing_resume_checkpoint_exits_2(tmp_path, capsys):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("model: nowhere.yaml\n")
    code = main(["train", "--config", str(cfg), "--resume", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path)])
    assert code == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_queue_init_random_writes_a_loadable_queue(tmp_path):
    out = tmp_path / "q.pt"
    args = ["queue-init", "--random", "--cat-num", "6", "--n-q", "80", "--dim", "32", "--out", str(out)]
    assert main(args) == 0
    q = load_queue(out)
    assert q.shape == (6, 80, 32) and torch.isfinite(q).all()


def test_queue_init_without_teacher_or_random_exits_2(tmp_path, capsys):
    assert main(["queue-init", "--out", str(tmp_path / "q.pt")]) == 2
    assert "--teacher" in capsys.readouterr().err


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from cleanpose_core.data.synthetic.generate import generate_split

    root = tmp_path_factory.mktemp("synth")
    generate_split(root, "train", 2, 123)  # 2 scenes x 4 frames, REAL-style layout
    generate_split(root, "test", 1, 7)  # 1 scene of unseen instances, with segmentation-result pickles
    return root


def _tiny_config(path: Path, data_root: Path, iterations: int) -> Path:
    """synthetic_lite.yaml pointed at the fixture, with the model shrunk to seconds per iteration."""
    cfg = yaml.safe_load((REPO / "config/train/synthetic_lite.yaml").read_text())
    cfg["sources"] = [{**s, "workers": 0, "batch_size": 2,
                       "dataset": {**s["dataset"], "root": str(data_root), "sample_num": 64}}
                      for s in cfg["sources"]]
    # The reader's 224-px crops stay; the backbone resizes them to 32 px. Random teacher, random queue.
    overrides = deep_merge(TINY, {"image": {"image_size": 224}, "kd": {"teacher_weights": None}})
    cfg.update(model_overrides=overrides, iterations=iterations, checkpoint_every=2, log_every=1, threads=1,
               queue_init=None, device="cpu")
    path.write_text(yaml.safe_dump(cfg))
    return path


@needs_stack
def test_cli_train_with_a_teacher_queue_but_no_queue_init_exits_2(tmp_path, synthetic_root, capsys):
    cfg = _tiny_config(tmp_path / "t.yaml", synthetic_root, 1)
    data = yaml.safe_load(cfg.read_text())
    data["model_overrides"]["causal"]["queue"]["init"] = "teacher"  # the official recipe, without its file
    cfg.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "causal.queue.init: teacher" in err and "no queue_init" in err and "cleanpose queue-init" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@needs_stack
def test_cli_train_smoke_on_synthetic_fixture(tmp_path, synthetic_root, capsys):
    cfg = _tiny_config(tmp_path / "t.yaml", synthetic_root, 2)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "[train] step 2/2 loss" in capsys.readouterr().out  # without the bar, one line per checkpoint
    for name in ("config.yaml", "checkpoint.pt", "model_final.pt"):
        assert (tmp_path / "run" / name).is_file()
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    final = torch.load(tmp_path / "run" / "model_final.pt", weights_only=True)
    assert final["step"] == 2 and final["n_points"] == 64
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())

    # What training writes is what inference loads: the Estimator runs it on a frame of the same data.
    from cleanpose_core.inference.predict import predict
    from cleanpose_core.inference.estimator import Estimator, EstimatorConfig
    from cleanpose_core.geometry.camera import Intrinsics, REAL275_INTRINSICS

    estimator = Estimator(EstimatorConfig(model_weights=str(tmp_path / "run" / "model_final.pt"),
                                          segmenter="external", device="cpu", min_points=8))
    assert estimator.n_points == 64
    # The training checkpoint of the same step loads too (evaluating a run midway), with identical weights.
    midway = Estimator(EstimatorConfig(model_weights=str(tmp_path / "run" / "checkpoint.pt"),
                                       segmenter="external", device="cpu", min_points=8))
    assert midway.n_points == 64
    for (name, a), b in zip(estimator.model.state_dict().items(), midway.model.state_dict().values()):
        assert torch.equal(a, b), name
    counts = predict(
        synthetic_root,
        "test",
        tmp_path / "results",
        estimator,
        "gt",
        Intrinsics(*REAL275_INTRINSICS),
        progress=False,
    )
    assert counts["images"] > 0 and counts["objects"] > 0
    assert main(["eval", "--results", str(tmp_path / "results"), "--json", str(tmp_path / "eval.json")]) == 0
    # The result score: ground-truth masks score 1, times the pose confidence unless `--score detection`.
    from cleanpose_core import NOCS_CATEGORIES
    from cleanpose_core.eval.results import load_results

    predict(synthetic_root, "test", tmp_path / "plain", estimator, "gt", Intrinsics(*REAL275_INTRINSICS),
            progress=False, score="detection")
    combined, plain = (
        np.concatenate([r.pred_scores for r in load_results(str(tmp_path / d), len(NOCS_CATEGORIES))])
        for d in ("results", "plain")
    )
    assert (plain == 1.0).all() and ((combined > 0) & (combined <= 1)).all() and (combined < 1).any()


@needs_stack
def test_cli_train_resume_in_fresh_process_matches_uninterrupted_run(tmp_path, synthetic_root):
    cfg4 = _tiny_config(tmp_path / "t4.yaml", synthetic_root, 4)
    straight = _cleanpose("train", "--config", str(cfg4), "--out", str(tmp_path / "a"), "--no-progress")
    assert straight.returncode == 0, straight.stderr

    first = _cleanpose("train", "--config", str(cfg4), "--iterations", "2", "--out", str(tmp_path / "b"),
                       "--no-progress")
    assert first.returncode == 0, first.stderr
    second = _cleanpose("train", "--config", str(cfg4), "--resume", "auto", "--out", str(tmp_path / "b"),
                        "--no-progress")
    assert second.returncode == 0, second.stderr
    a = torch.load(tmp_path / "a" / "model_final.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model_final.pt", weights_only=True)
    assert a["step"] == b["step"] == 4 and set(a["model"]) == set(b["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


TINY_PN2 = """arch: pointnet2_ssg
encoder: {npoints: [16, 8], nsamples: [8, 8], sa_mlps: [[8, 8], [8, 16]], global_mlp: [16, 32],
          fc_dims: [16, 8]}
points: 64
batch_size: 4
iterations: 3
val_fraction: 0.3
"""


def test_teacher_cli_trains_a_frozen_encoder_the_network_loader_accepts(tmp_path, dpdn_root):
    from cleanpose_core.models.teachers.pointnet2_ssg import (PointNet2SSG, PointNet2SSGConfig,
                                                              load_teacher_weights)
    from cleanpose_core.train.teacher import load_teacher

    cfg = tmp_path / "teacher.yaml"
    cfg.write_text(TINY_PN2)
    out = tmp_path / "pn2.pt"
    args = ["teacher", "--arch", "pointnet2_ssg", "--config", str(cfg), "--data", str(dpdn_root),
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    encoder, meta = load_teacher(out)
    assert meta["arch"] == "pointnet2_ssg" and {"train_accuracy", "val_accuracy"} <= set(meta["metrics"])
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert encoder(torch.rand(2, 64, 3)).shape == (2, 8)
    # The network's own loader (used by `kd.teacher_weights` / queue-init) reads the same file.
    fresh = PointNet2SSG(from_dict(PointNet2SSGConfig, meta["config"]))
    load_teacher_weights(fresh, out)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


def test_teacher_cli_rejects_arch_that_disagrees_with_config(tmp_path, dpdn_root, capsys):
    cfg = tmp_path / "teacher.yaml"
    cfg.write_text(TINY_PN2)
    args = ["teacher", "--arch", "pointbert", "--config", str(cfg), "--data", str(dpdn_root), "--out",
            str(tmp_path / "t.pt")]
    assert main(args) == 2
    assert "disagrees" in capsys.readouterr().err


@needs_stack
@pytest.mark.skipif(
    not (REPO / "models/segmenter_maskrcnn_mobilenet_v3.pt").is_file(), reason="needs the shipped segmenter"
)
def test_cli_predict_with_model_masks_keeps_only_scores_above_the_threshold(tmp_path, synthetic_root):
    from cleanpose_core import NOCS_CATEGORIES
    from cleanpose_core.eval.results import load_results

    kept = {}
    for threshold in (0.05, 0.9):
        out = tmp_path / f"t{threshold}"
        assert (
            main(
                [
                    "predict",
                    "--data",
                    str(synthetic_root),
                    "--out",
                    str(out),
                    "--masks",
                    "model",
                    "--pose-backend",
                    "box_fit",
                    "--device",
                    "cpu",
                    "--score-threshold",
                    str(threshold),
                ]
            )
            == 0
        )
        scores = np.concatenate([r.pred_scores for r in load_results(str(out), len(NOCS_CATEGORIES))])
        assert (scores >= threshold).all()
        kept[threshold] = len(scores)
    assert kept[0.05] > kept[0.9]


@pytest.mark.parametrize("name", ["synthetic_lite", "synthetic_lite_dr_scratch", "synthetic_lite_dr_finetune",
                                  "synthetic_lite_agpose",
                                  "synthetic_lite_short", "synthetic_lite_agpose_short", "real275_official",
                                  "housecat6d_official"])
def test_shipped_training_configs_resolve_to_valid_models(name):
    from cleanpose_core.config import load_yaml
    from cleanpose_core.train.components import load_model_config
    from cleanpose_core.train.config import TrainConfig

    cfg = load_yaml(TrainConfig, REPO / "config/train" / f"{name}.yaml")
    model = load_model_config(REPO / cfg.model, cfg.model_overrides)
    model.validate()
    if "agpose" in name:  # the ablation: neither the causal module nor KD
        assert not model.causal.enabled and not model.kd.enabled and model.loss.distillation == 0.0
    if cfg.init_weights:  # a fine-tune starts from a file the repository ships
        assert (REPO / cfg.init_weights).is_file()
    if name.endswith("short"):  # the one-session ablation stops where its single cycle ends, at the base lr
        assert cfg.schedule.step_size_up + cfg.schedule.step_size_down == cfg.iterations
