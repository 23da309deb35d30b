"""NOCS-format readers (data/nocs.py) on tiny CAMERA / REAL / synthetic-layout trees in the real file
formats."""

import pickle
import shutil

import numpy as np
import pytest
import torch
import yaml
from cleanpose_core.geometry.camera import CAMERA25_INTRINSICS, REAL275_INTRINSICS, Intrinsics

REAL_K = Intrinsics(*REAL275_INTRINSICS)
CAMERA_K = Intrinsics(*CAMERA25_INTRINSICS)
from data_fixtures import default_objects, write_nocs_frame, write_real_tree

from cleanpose_core.config import ConfigError, from_dict
from cleanpose_core.data.nocs import NOCSTestConfig, NOCSTestDataset, NOCSTrainConfig, NOCSTrainDataset
from cleanpose_core.geometry.camera import Intrinsics
from cleanpose_core.geometry.symmetry import canonicalize_y_symmetric

TRAIN_KEYS = {"pts", "rgb", "choose", "category_label", "model", "qo", "translation_label", "rotation_label",
              "size_label", "pc_mask"}
OBJS = {o.class_id - 1: o for o in default_objects()}  # 0-based category -> fixture object


def _train(root, **options):
    return NOCSTrainDataset(from_dict(NOCSTrainConfig, {"root": str(root), **options}))


def _exact(root, source, **options):
    """A reader whose samples are exact functions of the fixture: no completion, no noise, no colour
    change."""
    return _train(root, source=source, fill_depth=False, point_noise=False, color={"enabled": False},
                  num_img_per_epoch=24, sample_num=256, **options)


def _check_exact_sample(s, K: Intrinsics):
    cat = int(s["category_label"])
    o = OBJS[cat]
    pts = s["pts"].numpy()
    np.testing.assert_allclose(pts[:, 2], o.depth, atol=1e-6)  # planar patch at the object's depth
    u = pts[:, 0] * K.fx / pts[:, 2] + K.cx  # back-projected with this source's intrinsics
    np.testing.assert_allclose(u, np.round(u), atol=1e-3)
    np.testing.assert_allclose(s["translation_label"].numpy(), o.translation(K), atol=1e-6)
    np.testing.assert_allclose(s["size_label"].numpy(), o.extents, rtol=1e-5)  # scales * sizes = metric size
    R = s["rotation_label"].numpy()
    expected_R = canonicalize_y_symmetric(o.rotation) if cat in (0, 1, 3) else o.rotation
    np.testing.assert_allclose(R, expected_R, atol=1e-6)
    qo = (pts - o.translation(K)) / np.linalg.norm(o.extents) @ R
    np.testing.assert_allclose(s["qo"].numpy(), qo, atol=1e-5)
    # The bottle's and mug's model points are their exact NOCS points, the camera's are 2 units away.
    assert s["pc_mask"].dtype == torch.float32
    assert s["pc_mask"].numpy().tolist() == [0.0 if cat == 2 else 1.0] * len(pts)
    return cat


def test_real_train_sample_has_the_official_keys_shapes_and_dtypes(real_root):
    ds = _train(real_root, source="real")
    s = ds[0]
    assert set(s) == TRAIN_KEYS
    shapes = {k: tuple(v.shape) for k, v in s.items()}
    assert shapes == {
        "pts": (1024, 3),
        "rgb": (3, 224, 224),
        "choose": (1024,),
        "category_label": (1,),
        "model": (1024, 3),
        "qo": (1024, 3),
        "translation_label": (3,),
        "rotation_label": (3, 3),
        "size_label": (3,),
        "pc_mask": (1024,),
    }
    assert s["choose"].dtype == torch.int64 and s["category_label"].dtype == torch.int64
    assert all(v.dtype == torch.float32 for k, v in s.items() if k not in ("choose", "category_label"))
    assert 0 <= int(s["choose"].min()) and int(s["choose"].max()) < 224 * 224
    # what the trainer's loader does
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    assert batch["pts"].shape == (len(ds), 1024, 3) and batch["category_label"].shape == (len(ds), 1)


def test_real_train_values_incl_encoded_depth_symmetry_qo_and_pc_mask(real_root):
    ds = _exact(real_root, "real")
    assert set(ds.img_index.tolist()) == {0, 1}  # both the uint16 and the 3-channel encoded depth image
    seen = {_check_exact_sample(ds[i], REAL_K) for i in range(len(ds))}
    assert seen == {0, 2, 5}
    assert ds.skipped.total == 0


def test_symmetric_bottle_with_pure_y_rotation_gets_identity_label(real_root):
    ds = _exact(real_root, "real")
    bottles = [ds[i] for i in range(len(ds)) if int(ds[i]["category_label"]) == 0]
    assert bottles
    for s in bottles:
        np.testing.assert_allclose(s["rotation_label"].numpy(), np.eye(3), atol=1e-6)


def test_camera_train_reads_composed_depth_and_camera_intrinsics(camera_root):
    ds = _exact(camera_root, "camera")
    assert ds.layout.intrinsics == CAMERA_K
    # the decoy object-only _depth.png holds 2 m everywhere; composed depth gives the object depths
    seen = {_check_exact_sample(ds[i], CAMERA_K) for i in range(len(ds))}
    assert seen == {0, 2, 5}


def test_depth_completion_and_augmentation_on_by_default_keep_points_on_the_objects(real_root):
    ds = _train(real_root, source="real", sample_num=512, num_img_per_epoch=8)
    for i in range(len(ds)):
        s = ds[i]
        o = OBJS[int(s["category_label"])]
        z = s["pts"][:, 2].numpy()
        # point noise is clipped at 5 mm; completion only mixes depths at the patch border
        assert np.median(np.abs(z - o.depth)) < 0.005 and z.min() > o.depth - 0.006 and z.max() < 0.9 + 0.006
        # 60 x 40 px bottle: only its border mixes with the table (the 3x3 mug: all border)
        if o.class_id == 1:
            assert s["pc_mask"].mean() > 0.9


def test_epoch_draw_and_samples_are_deterministic_given_seed_and_epoch(real_root):
    ds = _train(real_root, source="real", num_img_per_epoch=6, sample_num=128)
    ds.reset(3, 42)
    order, first = ds.img_index.copy(), [ds[i] for i in range(3)]
    ds.reset(4, 42)
    other = [ds[i] for i in range(3)]
    ds.reset(3, 42)
    np.testing.assert_array_equal(ds.img_index, order)
    again = [ds[i] for i in (2, 0, 1)]  # a different access order gives the same samples
    for a, b in zip(first, [again[1], again[2], again[0]]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a["pts"], b["pts"]) for a, b in zip(first, other))


def test_bad_samples_are_skipped_and_counted_not_raised(tmp_path):
    write_real_tree(tmp_path, REAL_K)
    objs = default_objects()
    # an image whose depth is missing everywhere, an image with no labelled instance, a missing image
    write_nocs_frame(tmp_path / "real/train/scene_2/0000", objs, REAL_K, camera_style=False)
    (tmp_path / "real/train/scene_2/0000_depth.png").write_bytes(b"not a png")
    write_nocs_frame(tmp_path / "real/train/scene_2/0001", objs, REAL_K, camera_style=False)
    label = pickle.loads((tmp_path / "real/train/scene_2/0001_label.pkl").read_bytes())
    label = {k: v[:0] for k, v in label.items()}
    (tmp_path / "real/train/scene_2/0001_label.pkl").write_bytes(pickle.dumps(label))
    write_nocs_frame(tmp_path / "real/train/scene_2/0002", objs, REAL_K, camera_style=False)
    label = pickle.loads((tmp_path / "real/train/scene_2/0002_label.pkl").read_bytes())
    label["rotations"] = label["rotations"].reshape(-1, 9)  # malformed: flat rotations
    (tmp_path / "real/train/scene_2/0002_label.pkl").write_bytes(pickle.dumps(label))
    with open(tmp_path / "real/train_list.txt", "a") as f:
        f.write("train/scene_2/0000\ntrain/scene_2/0001\ntrain/scene_2/0002\ntrain/scene_9/0000\n")
    ds = _train(tmp_path, source="real", num_img_per_epoch=30, sample_num=64)
    samples = [ds[i] for i in range(len(ds))]
    assert all(set(s) == TRAIN_KEYS for s in samples)
    counts = ds.skipped.as_dict()
    assert set(counts) == {"unreadable file", "no labelled instance", "bad label", "missing file"}, counts


def test_all_bad_dataset_raises_a_clear_error_naming_the_reasons(tmp_path):
    write_real_tree(tmp_path, REAL_K)
    for p in (tmp_path / "real/train/scene_1").glob("*_depth.png"):
        p.unlink()
    ds = _train(tmp_path, source="real", max_attempts=5)
    with pytest.raises(RuntimeError, match="missing file"):
        ds[0]
    assert ds.skipped.total == 5


def test_missing_root_or_bad_option_fail_early_with_the_path_or_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_list.txt"):
        _train(tmp_path, source="real")
    with pytest.raises(ConfigError, match="source"):
        _train(tmp_path, source="kinect")
    with pytest.raises(ConfigError, match="num_img_per_epoch"):
        _train(tmp_path, num_img_per_epoch=0)
    with pytest.raises(ConfigError, match="subset"):
        _train(tmp_path, subset="real")


def test_synthetic_layout_reads_intrinsics_from_the_generator_config(tmp_path):
    K = Intrinsics(500.0, 500.0, 320.0, 240.0)
    objs = default_objects()
    for frame in ("0000", "0001"):
        write_nocs_frame(tmp_path / f"train/scene_0000/{frame}", objs, K, camera_style=False)
    (tmp_path / "train_list.txt").write_text("train/scene_0000/0000\ntrain/scene_0000/0001\n")
    real_models = tmp_path / "obj_models"
    real_models.mkdir()
    from data_fixtures import models_for

    (real_models / "train.pkl").write_bytes(pickle.dumps(models_for(objs, K)))
    cfg = {"config": {"camera": {"intrinsics": [500.0, 500.0, 320.0, 240.0], "width": 640, "height": 480}}}
    (tmp_path / "train" / "config.yaml").write_text(yaml.safe_dump(cfg))
    ds = _exact(tmp_path, "synthetic")
    assert ds.layout.intrinsics == K
    assert {_check_exact_sample(ds[i], K) for i in range(len(ds))} == {0, 2, 5}


def test_synthetic_engine_output_goes_through_the_same_reader(tmp_path):
    from cleanpose_core.data.synthetic.generate import generate_split

    generate_split(tmp_path, "train", 1, 5, progress=False, contact_sheet_rows=0)
    ds = _train(tmp_path, source="synthetic", sample_num=128)
    s = ds[0]
    assert set(s) == TRAIN_KEYS and s["pts"].shape == (128, 3)
    assert float(s["pc_mask"].mean()) > 0.5  # rendered points agree with the exported model points
    np.testing.assert_allclose(torch.linalg.det(s["rotation_label"]).item(), 1.0, atol=1e-5)


# --- test-time reader
# -----------------------------------------------------------------------------------------
def test_nocs_test_dataset_reads_segmentation_pickles_and_drops_tiny_instances(real_root):
    ds = NOCSTestDataset(from_dict(NOCSTestConfig, {"root": str(real_root), "source": "real",
                                                    "sample_num": 256}))
    assert len(ds) == 1
    item = ds[0]
    assert item.error is None
    assert item.kept.tolist() == [True, True, False, False]  # mug: 9 <= 16 valid pixels; last: empty mask
    assert [d.split(": ", 1)[1].split(":")[0] for d in item.dropped] == ["too few valid pixels", "empty mask"]
    assert item.num_instances == 2
    x = item.inputs
    assert (
        x["pts"].shape == (2, 256, 3) and x["rgb"].shape == (2, 3, 224, 224) and x["choose"].shape == (2, 256)
    )
    assert x["category_label"].tolist() == [0, 2]
    np.testing.assert_allclose(x["pts"][0, :, 2].median().item(), 0.5, atol=1e-3)
    np.testing.assert_allclose(x["pts"][1, :, 2].median().item(), 0.6, atol=1e-3)
    r = item.result
    assert r["pred_class_ids"].tolist() == [1, 3] and r["pred_scores"].tolist() == pytest.approx([0.9, 0.8])
    assert (
        r["pred_bboxes"].shape == (2, 4) and r["gt_RTs"].shape == (3, 4, 4) and r["gt_scales"].shape == (3, 3)
    )
    assert r["image_path"] == "data/real/test/scene_1/0000"
    assert {"gt_class_ids", "gt_bboxes", "gt_handle_visibility"} <= set(r)
    again = ds[0]
    assert torch.equal(again.inputs["pts"], x["pts"])  # seeded point choice: repeatable runs


def test_nocs_test_dataset_survives_unreadable_pickles_and_images(tmp_path):
    write_real_tree(tmp_path, REAL_K)
    seg = tmp_path / "segmentation_results" / "REAL275"
    (seg / "results_broken.pkl").write_bytes(b"\x80\x04truncated")
    shutil.copy(seg / "results_test_scene_1_0000.pkl", seg / "results_x_missing_image.pkl")
    data = pickle.loads((seg / "results_x_missing_image.pkl").read_bytes())
    data["image_path"] = "data/real/test/scene_7/0000"
    (seg / "results_x_missing_image.pkl").write_bytes(pickle.dumps(data))
    ds = NOCSTestDataset(from_dict(NOCSTestConfig, {"root": str(tmp_path), "sample_num": 64}))
    items = [ds[i] for i in range(len(ds))]
    errors = [it.error for it in items]
    assert sum(e is not None for e in errors) == 2
    for it in items:
        if it.error is not None:
            assert it.num_instances == 0 and it.inputs["pts"].shape == (0, 64, 3)
            assert it.result["pred_class_ids"].shape == (0,)
    broken = next(it for it in items if it.source.endswith("results_x_missing_image.pkl"))
    assert "gt_RTs" in broken.result  # the ground truth still reaches the evaluation
    assert ds.skipped.as_dict() == {"unreadable file": 1, "missing file": 1}


def test_training_depth_completion_of_the_crop_columns_equals_the_whole_frame_one(real_root, monkeypatch):
    """The reader fills only its sample's crop-window columns (training throughput): every sample tensor must
    equal the one built from the whole-frame completion of a depth map with holes."""
    import cleanpose_core.data.nocs as nocs

    read = nocs.read_depth_m

    def holed(path):  # knock out every 3rd pixel of every 2nd row: holes everywhere, inside masks too
        depth = read(path).copy()
        depth[::2, ::3] = 0.0
        return depth

    monkeypatch.setattr(nocs, "read_depth_m", holed)
    ds = _train(real_root, source="real", point_noise=False, num_img_per_epoch=6, sample_num=256)
    banded = [ds[i] for i in range(6)]
    monkeypatch.setattr(nocs, "fill_missing_in_columns", lambda depth, c0, c1: nocs.fill_missing(depth))
    whole = [ds[i] for i in range(6)]
    for a, b in zip(banded, whole):
        assert set(a) == set(b)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # The holes were filled: with completion off the same samples differ (fewer, different valid pixels).
    raw = _train(real_root, source="real", point_noise=False, num_img_per_epoch=6, sample_num=256,
                 fill_depth=False)
    assert any(not torch.equal(raw[i]["pts"], banded[i]["pts"]) for i in range(6))


def test_cached_frames_give_the_samples_of_reading_every_time(real_root, monkeypatch):
    import cleanpose_core.data.nocs as nocs

    read, reads = nocs.read_depth_m, []

    def holed(path):  # holes inside the masks too, so the completion matters
        reads.append(path)
        depth = read(path).copy()
        depth[::2, ::3] = 0.0
        return depth

    monkeypatch.setattr(nocs, "read_depth_m", holed)
    options = dict(source="real", point_noise=False, num_img_per_epoch=8, sample_num=256)
    plain, cached = _train(real_root, **options), _train(real_root, **options, cache_frames=True)
    expected = []
    for epoch in range(2):
        plain.reset(epoch, 3)
        expected += [plain[i] for i in range(8)]
    reads.clear()
    got = []
    for epoch in range(2):  # the second epoch draws the same images again: from the cache
        cached.reset(epoch, 3)
        got += [cached[i] for i in range(8)]
    for a, b in zip(expected, got):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert len(reads) == len(cached._frames) < len(got)  # each frame decoded once
