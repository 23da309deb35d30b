"""The segmentation readers on what the synthetic engine really writes (one small rendered test split)."""

import pickle

import cv2
import numpy as np
import pytest

from cleanpose_core.train.maskrcnn_data import NocsSegmentationDataset
from cleanpose_core.segmentation.ground_truth import GroundTruthSegmenter

pytest.importorskip("open3d")


@pytest.fixture(scope="module")
def synth_split(tmp_path_factory):
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import generate_split

    out = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig()
    cfg.frames_per_scene = 2
    generate_split(out, "test", 1, seed=0, cfg=cfg, workers=1, progress=False, contact_sheet_rows=0)
    return out


def test_training_dataset_reads_the_engine_output(synth_split):
    ds = NocsSegmentationDataset(synth_split, "test")
    assert len(ds) >= 1
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 480, 640)
        n = len(target["labels"])
        assert n >= 1 and target["masks"].shape == (n, 480, 640)
        assert ((target["labels"] >= 1) & (target["labels"] <= 6)).all()
        assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()


def test_prefix_and_segmentation_result_readers_agree(synth_split):
    pickles = sorted((synth_split / "segmentation_results" / "test").glob("results_*.pkl"))
    assert pickles
    for path in pickles:
        with open(path, "rb") as f:
            result = pickle.load(f)
        from_prefix, from_result = GroundTruthSegmenter(synth_split), GroundTruthSegmenter()
        assert from_prefix.use_frame(result["image_path"]) is None  # 'data/test/...' resolves under the root
        assert from_result.use_result(result) is None
        prefix = synth_split / result["image_path"].split("/", 1)[1]
        rgb = cv2.imread(str(prefix) + "_color.png")[:, :, ::-1].copy()
        depth = cv2.imread(str(prefix) + "_depth.png", cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
        a, b = from_prefix.segment(rgb, depth), from_result.segment(rgb, depth)
        assert a.reason is None and len(a) == len(result["pred_class_ids"])
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_array_equal(a.masks, b.masks)
