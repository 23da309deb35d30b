"""`cleanpose train-seg` and its NOCS-format dataset, on a 2-image fixture at 120x160."""

import argparse
import json

import numpy as np
import pytest
import torch

from cleanpose_core import cli as core_cli
from cleanpose_core.segmentation import build_segmenter
from cleanpose_core.train import cli as train_cli
from cleanpose_core.train.maskrcnn import SegTrainConfig, train_paths, train_segmenter
from cleanpose_core.train.maskrcnn_data import AugmentConfig, NocsSegmentationDataset

from seg_fixtures import write_nocs_dataset


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_train_seg_is_registered_in_the_one_cli():
    assert "cleanpose_core.train.cli" in core_cli.COMMAND_MODULES
    assert "train-seg" in core_cli.build_parser()._subparsers._group_actions[0].choices


def test_dataset_builds_torchvision_targets_from_mask_png_and_label(nocs_fixture):
    root, records = nocs_fixture
    ds = NocsSegmentationDataset(root, "train")
    image, target = ds[0]
    rec = records[0]
    assert (
        image.shape == (3, 120, 160)
        and image.dtype == torch.float32
        and 0 <= image.min()
        and image.max() <= 1
    )
    # BGR on disk -> RGB
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * 255, rec["rgb"], atol=0.5)
    assert target["labels"].tolist() == rec["class_ids"]  # 1-based, as torchvision wants (0 = background)
    for mask, box, inst in zip(target["masks"], target["boxes"], rec["instance_ids"]):
        np.testing.assert_array_equal(mask.numpy().astype(bool), rec["instance_map"] == inst)
        ys, xs = np.nonzero(mask.numpy())
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_dataset_flip_moves_masks_and_boxes_together(nocs_fixture):
    root, _ = nocs_fixture
    plain = NocsSegmentationDataset(root, "train")
    flipped = NocsSegmentationDataset(root, "train", AugmentConfig(hflip_prob=1.0, brightness=0, contrast=0,
                                                                   saturation=0, hue=0))
    (img_a, t_a), (img_b, t_b) = plain[1], flipped[1]
    torch.testing.assert_close(img_b, img_a.flip(-1))
    torch.testing.assert_close(t_b["masks"], t_a["masks"].flip(-1))
    w = img_a.shape[-1]
    torch.testing.assert_close(t_b["boxes"][:, [0, 2]], w - t_a["boxes"][:, [2, 0]])


def test_dataset_augmentation_is_a_function_of_seed_epoch_and_index(nocs_fixture):
    root, _ = nocs_fixture
    a = NocsSegmentationDataset(root, "train", AugmentConfig(), seed=3)
    b = NocsSegmentationDataset(root, "train", AugmentConfig(), seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    torch.testing.assert_close(a[1][0], b[1][0])
    b.set_epoch(3)
    assert not torch.equal(a[1][0], b[1][0])


def test_missing_list_file_names_the_expected_path(tmp_path):
    assert (
        _run_cli(["train-seg", "--data", str(tmp_path), "--out", str(tmp_path / "s.pt"), "--no-progress"])
        == 2
    )
    with pytest.raises(FileNotFoundError, match="train_list.txt"):
        NocsSegmentationDataset(tmp_path, "train")


def test_tiny_train_seg_run_decreases_the_loss_and_writes_loadable_weights(nocs_fixture, capsys):
    root, records = nocs_fixture
    out = root.parent / "seg.pt"
    torch.set_num_threads(1)
    code = _run_cli(f"train-seg --data {root} --out {out} --iterations 25 --batch-size 2 --min-size 120 "
                    "--max-size 160 --seed 0 --device cpu --no-progress".split())
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["final_step"] == 25
    history = json.loads(train_paths(out)["log"].read_text())["losses"]
    first, last = history[0][1], np.mean([h[1] for h in history[-3:]])
    assert last < 0.6 * first, history
    seg = build_segmenter("maskrcnn", weights=str(out), device="cpu", min_size=120, max_size=160,
                          score_threshold=0.0, min_points=0)
    result = seg.segment(records[0]["rgb"], records[0]["depth_m"])
    assert result.reason is None and result.masks.shape[1:] == (120, 160)
    # Without an explicit size the weights' training size is used (a from-scratch CNN is scale-specific).
    assert build_segmenter("maskrcnn", weights=str(out), device="cpu").model.transform.min_size == (120,)
    resumed = build_segmenter("maskrcnn", weights=str(train_paths(out)["checkpoint"]), device="cpu")
    assert resumed.model.transform.min_size == (120,) and resumed.model.transform.max_size == 160


def test_resume_continues_bit_for_bit(tmp_path):
    root = tmp_path / "data"
    write_nocs_dataset(root, "train", n_images=3, seed=1)  # odd count: batches straddle epochs
    torch.set_num_threads(1)

    def cfg(out, iterations):
        return SegTrainConfig(data=str(root), out=str(out), iterations=iterations, batch_size=2, min_size=64,
                              max_size=96, warmup_iterations=2, checkpoint_every=2, log_every=1, device="cpu")

    train_segmenter(cfg(tmp_path / "straight.pt", 4), progress=False)
    train_segmenter(cfg(tmp_path / "split.pt", 2), progress=False)
    train_segmenter(cfg(tmp_path / "split.pt", 4), resume=True, progress=False)
    a = torch.load(tmp_path / "straight.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_resume_without_a_checkpoint_fails_clearly(nocs_fixture):
    root, _ = nocs_fixture
    code = _run_cli(
        ["train-seg", "--data", str(root), "--out", str(root / "none.pt"), "--resume", "--no-progress"]
    )
    assert code == 2


def test_config_file_typos_are_reported_by_name(nocs_fixture, tmp_path, capsys):
    root, _ = nocs_fixture
    (tmp_path / "seg.yaml").write_text("iterations: 2\naugment:\n  hflip_prop: 0.5\n")
    code = _run_cli(["train-seg", "--config", str(tmp_path / "seg.yaml"), "--data", str(root), "--out",
                     str(tmp_path / "s.pt"), "--no-progress"])
    assert code == 2 and "augment.hflip_prop" in capsys.readouterr().err


def test_init_fine_tunes_from_a_weights_file_and_rejects_another_architecture(tmp_path, capsys):
    root = tmp_path / "data"
    write_nocs_dataset(root, "train", n_images=2, seed=1)
    torch.set_num_threads(1)

    def cfg(out, **kw):
        return SegTrainConfig(
            data=str(root),
            out=str(out),
            iterations=1,
            batch_size=2,
            min_size=64,
            max_size=96,
            warmup_iterations=1,
            checkpoint_every=1,
            log_every=1,
            device="cpu",
            **kw,
        )

    train_segmenter(cfg(tmp_path / "first.pt", seed=0), progress=False)
    # A near-zero learning rate: the fine-tuned weights stay the starting weights, which a different seed's
    # random initialisation does not reproduce.
    train_segmenter(
        cfg(tmp_path / "tuned.pt", seed=5, lr=1e-12, init=str(tmp_path / "first.pt")), progress=False
    )
    train_segmenter(cfg(tmp_path / "scratch.pt", seed=5, lr=1e-12), progress=False)
    first, tuned, scratch = (torch.load(tmp_path / f"{n}.pt", weights_only=True)["model"]
                             for n in ("first", "tuned", "scratch"))
    key = next(k for k, v in first.items() if v.is_floating_point() and v.dim() == 4)  # a conv weight
    torch.testing.assert_close(tuned[key], first[key], rtol=0, atol=1e-6)
    assert not torch.allclose(scratch[key], first[key])
    code = _run_cli(
        [
            "train-seg",
            "--data",
            str(root),
            "--out",
            str(tmp_path / "r50.pt"),
            "--backbone",
            "resnet50",
            "--init",
            str(tmp_path / "first.pt"),
            "--iterations",
            "1",
            "--no-progress",
        ]
    )
    assert code == 2 and "is a mobilenet_v3 Mask R-CNN" in capsys.readouterr().err


def test_several_folders_of_one_camera_train_together_and_other_cameras_are_refused(tmp_path):
    from cleanpose_core.train.maskrcnn_data import ConcatSegmentationDataset

    write_nocs_dataset(tmp_path / "a", "train", n_images=2, seed=1)
    write_nocs_dataset(tmp_path / "b", "train", n_images=3, seed=2)
    both = ConcatSegmentationDataset([NocsSegmentationDataset(tmp_path / r, "train", AugmentConfig(), seed=0)
                                      for r in ("a", "b")])
    both.set_epoch(3)
    assert len(both) == 5 and [d.epoch for d in both.datasets] == [3, 3]
    torch.set_num_threads(1)
    cfg = SegTrainConfig(data=[str(tmp_path / "a"), str(tmp_path / "b")], out=str(tmp_path / "ab.pt"),
                         iterations=1, batch_size=5, min_size=64, max_size=96, device="cpu")
    train_segmenter(cfg, progress=False)
    meta = torch.load(tmp_path / "ab.pt", weights_only=True)["meta"]
    assert meta["data"] == f"{tmp_path / 'a'}, {tmp_path / 'b'}"
    assert meta["train_camera"]["fx"] == pytest.approx(591.0125)  # no config.yaml: REAL275's camera
    (tmp_path / "b" / "train" / "config.yaml").write_text(
        "config:\n  camera: {intrinsics: [612.95, 612.9, 638.5, 366.0], width: 1280, height: 720}\n")
    cfg.out = str(tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match="1280x720.*one camera"):
        train_segmenter(cfg, progress=False)
