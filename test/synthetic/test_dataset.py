"""The written dataset: geometry of labels vs. depth and NOCS maps, the DPDN layout, determinism, splits,
resume."""

import argparse
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import ConfigError
from cleanpose_core.data.synthetic import cli
from cleanpose_core.data.synthetic.generate import generate_split
from cleanpose_core.data.synthetic.writer import decode_nocs
from cleanpose_core.geometry.camera import REAL275_INTRINSICS, Intrinsics, pixels_to_points

K = Intrinsics(*REAL275_INTRINSICS)


def _prefixes(root: Path, split: str, name: str = "list_all") -> list[str]:
    return (root / f"{split}_{name}.txt").read_text().split()


def _load(root: Path, prefix: str):
    base = str(root / prefix)
    depth = cv2.imread(base + "_depth.png", cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(base + "_mask.png")[:, :, 2]  # what the official readers do
    coord = decode_nocs(cv2.imread(base + "_coord.png"))
    with open(base + "_label.pkl", "rb") as f:
        label = pickle.load(f)
    return depth, mask, coord, label


def _nocs_residuals(root: Path, split: str):
    """Per labelled instance: (NOCS from depth + pose) - (NOCS map), and the NOCS-from-depth points."""
    out = []
    for prefix in _prefixes(root, split, "list"):
        depth, mask, coord, label = _load(root, prefix)
        depth_m = depth.astype(np.float32) / 1000.0
        for i, inst in enumerate(label["instance_ids"]):
            rows, cols = np.nonzero((mask == inst) & (depth > 0))
            p = pixels_to_points(rows, cols, depth_m, K).astype(np.float64)
            R, t, s = (
                label["rotations"][i].astype(np.float64),
                label["translations"][i],
                float(label["scales"][i]),
            )
            p_nocs = (p - t) @ R / s  # R^T (p - t) / s, row-wise
            out.append((p_nocs - coord[rows, cols], p_nocs, prefix, inst))
    assert out, "no labelled instances were written"
    return out


def test_clean_depth_back_projects_onto_the_nocs_map_inside_the_unit_box(clean_test_split):
    for residual, p_nocs, prefix, inst in _nocs_residuals(clean_test_split, "test"):
        err = np.linalg.norm(residual, axis=1)
        # 8-bit NOCS (<= 1/510 per axis) plus 0.5 mm depth quantisation of a 0.1-0.5 m object.
        assert np.median(err) < 0.006, (prefix, inst, np.median(err))
        assert np.quantile(err, 0.99) < 0.03, (prefix, inst)
        assert np.all(np.abs(p_nocs) <= 0.5 + 0.02), (prefix, inst, np.abs(p_nocs).max())


def test_noisy_depth_back_projects_onto_the_nocs_map_within_noise(noisy_train_split):
    for residual, p_nocs, prefix, inst in _nocs_residuals(noisy_train_split, "train"):
        err = np.linalg.norm(residual, axis=1)
        assert np.median(err) < 0.03, (prefix, inst, np.median(err))
        assert np.mean(np.all(np.abs(p_nocs) <= 0.55, axis=1)) > 0.97, (prefix, inst)


def test_a_wrong_pose_breaks_the_nocs_consistency(clean_test_split):
    # Guards the geometry test: the same check with a rotation off by 10 degrees must fail clearly.
    prefix = _prefixes(clean_test_split, "test", "list")[0]
    depth, mask, coord, label = _load(clean_test_split, prefix)
    inst = label["instance_ids"][0]
    rows, cols = np.nonzero((mask == inst) & (depth > 0))
    p = pixels_to_points(rows, cols, depth.astype(np.float32) / 1000.0, K)
    a = np.deg2rad(10)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    R = label["rotations"][0] @ Rz
    p_nocs = (p - label["translations"][0]) @ R / label["scales"][0]
    assert np.median(np.linalg.norm(p_nocs - coord[rows, cols], axis=1)) > 0.02


def test_label_rotations_are_proper(clean_test_split, noisy_train_split):
    for root, split in ((clean_test_split, "test"), (noisy_train_split, "train")):
        for prefix in _prefixes(root, split, "list"):
            R = _load(root, prefix)[3]["rotations"].astype(np.float64)
            np.testing.assert_allclose(
                R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-5
            )
            np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)


def test_every_file_and_key_of_the_dpdn_layout(clean_test_split):
    root, split = clean_test_split, "test"
    all_prefixes, valid = _prefixes(root, split), _prefixes(root, split, "list")
    assert len(all_prefixes) == 6 and set(valid) <= set(all_prefixes) and valid
    assert all(p.startswith("test/scene_") for p in all_prefixes)
    with open(root / "obj_models" / "test.pkl", "rb") as f:
        models = pickle.load(f)
    for points in models.values():
        assert points.shape == (1024, 3) and points.dtype == np.float32
        lo, hi = points.min(0), points.max(0)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=0.03) and np.abs((lo + hi) / 2).max() < 0.02
    config = yaml.safe_load((root / split / "config.yaml").read_text())
    assert config["seed"] == 5 and config["split"] == "test" and config["config"]["noise"]["enabled"] is False

    n_instances = 0
    for prefix in all_prefixes:
        base = root / prefix
        colour = cv2.imread(str(base) + "_color.png", cv2.IMREAD_UNCHANGED)
        assert colour.shape == (480, 640, 3) and colour.dtype == np.uint8
        depth = cv2.imread(str(base) + "_depth.png", cv2.IMREAD_UNCHANGED)
        assert depth.shape == (480, 640) and depth.dtype == np.uint16 and depth.max() > 0
        mask3 = cv2.imread(str(base) + "_mask.png")
        assert mask3.shape == (480, 640, 3) and mask3.dtype == np.uint8
        coord = cv2.imread(str(base) + "_coord.png")
        assert coord.shape == (480, 640, 3) and coord.dtype == np.uint8
        mask = mask3[:, :, 2]
        meta = [line.split() for line in (Path(str(base) + "_meta.txt")).read_text().splitlines()]
        meta_ids = {int(m[0]) for m in meta}
        assert set(np.unique(mask).tolist()) - {255} == meta_ids
        for inst_id, class_id, model_id in meta:
            assert 1 <= int(class_id) <= 6 and model_id.startswith(NOCS_CATEGORIES[int(class_id) - 1] + "_")
            assert model_id in models
        assert np.all(coord[mask == 255] == 0) and np.any(coord[mask != 255] > 0)

        with open(str(base) + "_label.pkl", "rb") as f:
            label = pickle.load(f)
        assert set(label) == {
            "class_ids",
            "instance_ids",
            "model_list",
            "bboxes",
            "scales",
            "sizes",
            "rotations",
            "translations",
            "handle_visibility",
        }
        n = len(label["class_ids"])
        n_instances += n
        assert (prefix in valid) == (n > 0)
        assert all(isinstance(c, int) and 1 <= c <= 6 for c in label["class_ids"])
        assert all(isinstance(i, int) for i in label["instance_ids"]) and len(label["instance_ids"]) == n
        assert all(isinstance(m, str) for m in label["model_list"]) and len(label["model_list"]) == n
        for key, shape, dtype in (
            ("bboxes", (n, 4), np.int32),
            ("scales", (n,), np.float32),
            ("sizes", (n, 3), np.float32),
            ("rotations", (n, 3, 3), np.float32),
            ("translations", (n, 3), np.float32),
            ("handle_visibility", (n,), np.int32),
        ):
            assert label[key].shape == shape and label[key].dtype == dtype, key
        np.testing.assert_allclose(np.linalg.norm(label["sizes"], axis=1), 1.0, atol=1e-5)
        for i, inst in enumerate(label["instance_ids"]):
            ys, xs = np.nonzero(mask == inst)
            assert label["bboxes"][i].tolist() == [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
            assert np.count_nonzero((mask == inst) & (depth > 0)) >= 64
            assert label["translations"][i][2] > 0.2  # in front of the camera, metres
            assert 0.05 < label["scales"][i] < 0.6  # metric diagonal in metres

        seg_path = (
            root
            / "segmentation_results"
            / split
            / f"results_{prefix.split('/')[1]}_{prefix.split('/')[2]}.pkl"
        )
        assert seg_path.is_file() == (n > 0)
        if n:
            with open(seg_path, "rb") as f:
                seg = pickle.load(f)
            assert seg["image_path"] == "data/" + prefix and seg["image_path"][5:] == prefix
            assert seg["pred_masks"].shape == (480, 640, n) and seg["pred_masks"].dtype == bool
            for i, inst in enumerate(label["instance_ids"]):
                np.testing.assert_array_equal(seg["pred_masks"][:, :, i], mask == inst)
            np.testing.assert_array_equal(seg["pred_class_ids"], label["class_ids"])
            np.testing.assert_array_equal(seg["gt_class_ids"], label["class_ids"])
            np.testing.assert_array_equal(seg["pred_bboxes"], label["bboxes"])
            np.testing.assert_array_equal(seg["gt_bboxes"], label["bboxes"])
            np.testing.assert_array_equal(seg["pred_scores"], np.ones(n, np.float32))
            assert seg["gt_RTs"].shape == (n, 4, 4)
            np.testing.assert_allclose(
                seg["gt_RTs"][:, :3, :3], label["rotations"] * label["scales"][:, None, None], atol=1e-6
            )
            np.testing.assert_allclose(seg["gt_RTs"][:, :3, 3], label["translations"])
            np.testing.assert_allclose(seg["gt_RTs"][:, 3], np.tile([0, 0, 0, 1], (n, 1)))
            np.testing.assert_array_equal(seg["gt_scales"], label["sizes"])
            np.testing.assert_array_equal(seg["gt_handle_visibility"], label["handle_visibility"])
    assert n_instances >= 3
    assert (root / "contact_sheet_test.png").is_file()


def test_same_seed_gives_byte_identical_labels_and_another_seed_does_not(tmp_path, small_config):
    cfg = small_config()
    cfg.scene.pool_size = 4
    # "b" uses two worker processes: per-scene seeds make the result independent of scheduling.
    for name, seed, workers in (("a", 3, 1), ("b", 3, 2), ("c", 4, 1)):
        generate_split(tmp_path / name, "test", 2, seed=seed, cfg=cfg, workers=workers, progress=False,
                       contact_sheet_rows=0)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.pkl"))
    assert len(files) > 5
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    labels = [rel for rel in files if rel.name.endswith("_label.pkl")]
    assert any((tmp_path / "a" / r).read_bytes() != (tmp_path / "c" / r).read_bytes() for r in labels)


def test_train_and_test_instances_are_disjoint(clean_test_split, noisy_train_split):
    def used(root, split):
        ids = set()
        for prefix in _prefixes(root, split):
            ids |= {
                line.split()[2] for line in Path(str(root / prefix) + "_meta.txt").read_text().splitlines()
            }
        return ids

    train, test = used(noisy_train_split, "train"), used(clean_test_split, "test")
    assert train and test and not train & test
    with (
        open(noisy_train_split / "obj_models" / "train.pkl", "rb") as f,
        open(clean_test_split / "obj_models" / "test.pkl", "rb") as g,
    ):
        assert not set(pickle.load(f)) & set(pickle.load(g))


def test_a_val_split_draws_from_its_own_pool_and_is_readable_like_a_test_split(tmp_path, small_config,
                                                                              clean_test_split,
                                                                              noisy_train_split):
    cfg = small_config(noise=False)
    cfg.scene.val_pool_size = 4
    generate_split(tmp_path, "val", 2, seed=5, cfg=cfg, progress=False)
    with open(tmp_path / "obj_models" / "val.pkl", "rb") as f:
        val_models = set(pickle.load(f))
    # pool_size 12: instances 12..15 of every category, none of train's (even) or test's (odd) below 12
    assert val_models == {f"{c}_{i:04d}" for c in NOCS_CATEGORIES for i in range(12, 16)}
    for root, split in ((noisy_train_split, "train"), (clean_test_split, "test")):
        with open(root / "obj_models" / f"{split}.pkl", "rb") as f:
            assert not set(pickle.load(f)) & val_models
    # Like a test split it has segmentation-result pickles, which `cleanpose predict --split val` reads.
    assert sorted((tmp_path / "segmentation_results" / "val").glob("results_*.pkl"))
    with pytest.raises(ConfigError, match="train and test only"):
        cfg.scene.shape_source, cfg.scene.meshes = "meshes", str(tmp_path)
        generate_split(tmp_path / "meshes", "val", 1, seed=5, cfg=cfg, progress=False)


def test_resume_skips_complete_scenes_and_redoes_incomplete_ones(tmp_path, small_config):
    cfg = small_config()
    cfg.scene.pool_size = 4
    first = generate_split(tmp_path, "train", 2, seed=1, cfg=cfg, progress=False, contact_sheet_rows=0)
    assert first.scenes_rendered == 2
    label = tmp_path / "train" / "scene_0002" / "0001_label.pkl"
    original = label.read_bytes()
    assert (
        generate_split(
            tmp_path, "train", 2, seed=1, cfg=cfg, progress=False, contact_sheet_rows=0
        ).scenes_rendered
        == 0
    )
    label.unlink()  # an interrupted scene
    again = generate_split(tmp_path, "train", 3, seed=1, cfg=cfg, progress=False, contact_sheet_rows=0)
    assert again.scenes_rendered == 2 and label.read_bytes() == original
    assert len(_prefixes(tmp_path, "train")) == 6
    with pytest.raises(ConfigError, match="seed"):
        generate_split(tmp_path, "train", 3, seed=2, cfg=cfg, progress=False)


def test_biased_split_ties_colour_to_category_in_train_only(small_config):
    from cleanpose_core.data.synthetic.scene import compose_scene

    cfg = small_config()
    cfg.scene.biased, cfg.scene.bias_strength = True, 1.0
    for split, biased in (("train", True), ("test", False)):
        hues = {}
        for i in range(12):
            scene = compose_scene(np.random.default_rng(i), split, cfg.scene, cfg.camera, cfg.render, 1)
            for obj in scene.objects:
                rgb = obj.material.colours[0] ** (1 / 2.2)
                hue = cv2.cvtColor(np.float32(rgb)[None, None], cv2.COLOR_RGB2HSV)[0, 0, 0] / 360.0
                hues.setdefault(obj.shape.category, []).append(hue)
        spread = np.mean([np.std(h) for h in hues.values() if len(h) > 2])
        assert (spread < 0.05) == biased, (split, spread)


def test_cli_renders_a_split_and_rejects_bad_arguments(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="cleanpose")
    cli.register(parser.add_subparsers(dest="command"))
    cfg_path = tmp_path / "synth.yaml"
    cfg_path.write_text("scene:\n  pool_size: 4\n  objects: [2, 3]\nrender:\n  threads: 1\n")
    args = parser.parse_args(
        [
            "synth",
            "--out",
            str(tmp_path / "d"),
            "--scenes",
            "1",
            "--split",
            "train",
            "--seed",
            "0",
            "--frames-per-scene",
            "1",
            "--config",
            str(cfg_path),
            "--no-noise",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    assert (tmp_path / "d" / "train_list_all.txt").read_text().strip() == "train/scene_0001/0000"
    assert (tmp_path / "d" / "contact_sheet_train.png").is_file()
    cfg_path.write_text("scene:\n  pool_sise: 4\n")
    args = parser.parse_args(
        [
            "synth",
            "--out",
            str(tmp_path / "e"),
            "--scenes",
            "1",
            "--split",
            "train",
            "--config",
            str(cfg_path),
        ]
    )
    assert args.func(args) == 2  # the typo is reported, not ignored
