"""HouseCat6D readers (data/housecat6d.py) on a tiny scene tree in the real layout (852 x 1096 images)."""

import numpy as np
import pytest
import torch
from data_fixtures import HOUSECAT_K, housecat_objects

from cleanpose_core.config import from_dict
from cleanpose_core.data.housecat6d import (
    HouseCat6DTestConfig,
    HouseCat6DTestDataset,
    HouseCat6DTrainConfig,
    HouseCat6DTrainDataset,
)

OBJS = {o.class_id - 1: o for o in housecat_objects()}


def test_train_sample_keys_values_symmetry_and_per_scene_intrinsics(housecat_root):
    ds = HouseCat6DTrainDataset(from_dict(HouseCat6DTrainConfig, {
        "root": str(housecat_root), "num_img_per_epoch": 12, "sample_num": 128, "fill_depth": False,
        "point_noise": False, "color": {"enabled": False}}))
    assert len(ds.images) == 2  # scene01 only: test_scene1 is not a training scene
    seen = set()
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == {"pts", "rgb", "choose", "category_label", "translation_label", "rotation_label",
                          "size_label"}  # no model / qo / pc_mask on HouseCat6D
        assert (
            s["rgb"].shape == (3, 224, 224)
            and s["pts"].shape == (128, 3)
            and s["choose"].dtype == torch.int64
        )
        cat = int(s["category_label"])
        o = OBJS[cat]
        seen.add(cat)
        pts = s["pts"].numpy()
        np.testing.assert_allclose(pts[:, 2], o.depth, atol=1e-6)
        u = pts[:, 0] * HOUSECAT_K.fx / pts[:, 2] + HOUSECAT_K.cx  # intrinsics.txt of the scene
        np.testing.assert_allclose(u, np.round(u), atol=1e-3)
        # gt_scales are metric sizes
        np.testing.assert_allclose(s["size_label"].numpy(), o.extents, rtol=1e-6)
        np.testing.assert_allclose(s["translation_label"].numpy(), o.translation(HOUSECAT_K), atol=1e-6)
        if cat == 7:  # glass, symmetric, labelled with a pure y rotation -> identity
            np.testing.assert_allclose(s["rotation_label"].numpy(), np.eye(3), atol=1e-6)
        else:
            np.testing.assert_allclose(s["rotation_label"].numpy(), o.rotation, atol=1e-6)
    assert seen == {0, 7, 8}
    assert ds.skipped.total == 0


def test_train_reset_is_deterministic(housecat_root):
    ds = HouseCat6DTrainDataset(
        from_dict(HouseCat6DTrainConfig, {"root": str(housecat_root), "sample_num": 64})
    )
    ds.reset(2, 9)
    a = ds[1]
    ds.reset(0, 0)
    ds.reset(2, 9)
    b = ds[1]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_test_images_use_ground_truth_masks_and_write_result_fields(housecat_root):
    ds = HouseCat6DTestDataset(
        from_dict(HouseCat6DTestConfig, {"root": str(housecat_root), "sample_num": 64})
    )
    assert len(ds) == 1
    item = ds[0]
    assert item.error is None and item.kept.tolist() == [True, True, False]  # the 9-pixel shoe is dropped
    assert item.inputs["pts"].shape == (2, 64, 3) and item.inputs["category_label"].tolist() == [7, 0]
    r = item.result
    assert r["pred_class_ids"].tolist() == [8, 1] and r["pred_scores"].tolist() == [1.0, 1.0]
    objs = housecat_objects()
    for j, o in enumerate(objs):
        diag = np.linalg.norm(o.extents)
        np.testing.assert_allclose(r["gt_RTs"][j, :3, :3], o.rotation * diag, atol=1e-6)
        np.testing.assert_allclose(r["gt_RTs"][j, :3, 3], o.translation(HOUSECAT_K), atol=1e-6)
        np.testing.assert_allclose(r["gt_scales"][j], o.extents / diag, atol=1e-6)
    assert r["gt_class_ids"].tolist() == [8, 1, 9] and r["gt_handle_visibility"].tolist() == [1, 1, 1]


def test_missing_root_and_broken_label_are_reported(tmp_path, housecat_root):
    with pytest.raises(FileNotFoundError, match="no images"):
        HouseCat6DTrainDataset(from_dict(HouseCat6DTrainConfig, {"root": str(tmp_path)}))
    import shutil

    shutil.copytree(housecat_root / "test_scene1", tmp_path / "test_scene1")
    (tmp_path / "test_scene1/labels/000000_label.pkl").write_bytes(b"garbage")
    ds = HouseCat6DTestDataset(from_dict(HouseCat6DTestConfig, {"root": str(tmp_path), "sample_num": 16}))
    item = ds[0]
    assert (
        item.error is not None and item.num_instances == 0 and ds.skipped.as_dict() == {"unreadable file": 1}
    )
