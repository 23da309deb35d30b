"""The whole network at the lite and paper configurations: shapes, gradients, modes, parameter counts, CLI."""

import json
import re
import warnings

import pytest
import torch

from cleanpose_core.config import ConfigError, from_dict, load_yaml, to_dict
from cleanpose_core.models.cleanpose import CleanPoseConfig, build_model, euler_xyz_to_matrix
from cleanpose_core.models.losses import build_loss

PAPER = "config/model/cleanpose_paper.yaml"
LITE = "config/model/cleanpose_lite.yaml"
HOUSECAT = "config/model/cleanpose_paper_housecat6d.yaml"


def load(path, **overrides):
    data = to_dict(load_yaml(CleanPoseConfig, path))
    data["image"]["weights"] = None  # no downloads in tests: DINOv2 at random weights
    for k, v in overrides.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) else v
    return from_dict(CleanPoseConfig, data)


def build(cfg, teacher=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-teacher warning
        return build_model(cfg, teacher=teacher, load_weights=False)


def make_batch(cfg, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = 2 * cfg.points.npoints[0]
    pts = torch.randn(b, n, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 0.7])
    return {"pts": pts, "rgb": torch.randn(b, 3, 224, 224, generator=g),
            "choose": torch.randint(0, 224 * 224, (b, n), generator=g),
            "category_label": torch.arange(b) % cfg.cat_num,
            "rotation_label": euler_xyz_to_matrix(torch.rand(b, 3, generator=g)),
            "translation_label": pts.mean(1), "size_label": torch.full((b, 3), 0.1),
            "pc_mask": torch.rand(b, n, generator=g) > 0.2,
            "teacher_feat": torch.randn(b, 2 * cfg.kd.teacher.trans_dim, generator=g)}


def trainable(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def check_train_step(model, cfg, b):
    batch = make_batch(cfg, b)
    model.train()
    out = model(batch)
    k, n = cfg.iakd.kpt_num, batch["pts"].shape[1]
    expected = {"pred_rotation": (b, 3, 3), "pred_translation": (b, 3), "pred_size": (b, 3),
                "pred_kpt_3d": (b, k, 3), "pred_kpt_nocs": (b, k, 3), "pred_heat_map": (b, k, n),
                "recon_model": (b, k * cfg.pts_per_kpt, 3), "recon_delta": (b, k * cfg.pts_per_kpt, 3),
                "queue_feat": (b, cfg.feat_dim), "distillation_pointnet": (b, 2 * cfg.kd.teacher.trans_dim),
                "distillation_ulip": (b, 2 * cfg.kd.teacher.trans_dim)}
    assert {key: tuple(v.shape) for key, v in out.items()} == expected
    rot = out["pred_rotation"]
    torch.testing.assert_close(rot @ rot.transpose(1, 2), torch.eye(3).expand(b, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(b), atol=1e-5, rtol=0)
    terms = build_loss(cfg)(out, batch)
    assert torch.isfinite(terms["loss_all"])
    terms["loss_all"].backward()
    # Every trainable parameter is in the graph. Exactly zero at initialisation, by design: K1 of the KD head
    # (K2 starts at zero) and the residual branches of timm ResNets in front of their zero-initialised bn2.
    assert [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    zero_at_init = re.compile(
        r"kd_head\.k1\.weight|rgb_extractor\.backbone\.net\.layer\d\.\d\.(conv1|bn1|conv2)\."
    )
    assert [name for name, p in model.named_parameters()
            if p.requires_grad and not p.grad.abs().sum() > 0 and not zero_at_init.match(name)] == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_lite_forward_backward_shapes_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    cfg = load(LITE)
    check_train_step(build(cfg), cfg, 3)


def test_paper_forward_backward_shapes_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    cfg = load(PAPER)
    check_train_step(build(cfg), cfg, 2)


def test_paper_trainable_parameter_counts_equal_the_official_measurements():
    cfg = load(PAPER)
    model = build(cfg)
    per_module = {name: trainable(child) for name, child in model.named_children()}
    assert per_module == {"rgb_extractor": 0, "feature_mlp": 49_280, "pts_extractor": 1_307_808,
                          "iakd": 2_662_400, "gafa": 1_945_088, "fd_encoder": 3_561_986, "queue": 0,
                          "reconstructor": 713_886, "nocs_predictor": 2_304_896, "estimator": 2_043_276,
                          "kd_head": 32_768 + 98_304}
    assert trainable(model) == 14_719_692
    assert trainable(build(load(HOUSECAT))) == 15_113_676
    agpose = build(load(PAPER, causal={"enabled": False}, kd={"enabled": False}, loss={"distillation": 0.0}))
    assert trainable(agpose) == 11_026_634


def test_eval_mode_has_test_outputs_and_never_changes_the_queue():
    cfg = load(LITE)
    model = build(cfg).eval()
    before = model.queue.entries.clone()
    with torch.no_grad():
        out = model(make_batch(cfg, 2))
    assert set(out) == {"pred_rotation", "pred_translation", "pred_size", "pred_kpt_3d", "kpt_nocs"}
    assert model.queue.push(torch.randn(2, cfg.feat_dim), torch.tensor([0, 1])) is False
    torch.testing.assert_close(model.queue.entries, before, rtol=0, atol=0)


def test_test_time_results_are_deterministic_with_a_seeded_queue_generator():
    cfg = load(LITE)
    model = build(cfg).eval()
    batch = make_batch(cfg, 2)
    outs = []
    with torch.no_grad():
        for seed in (42, 42, 7):
            model.queue_generator.manual_seed(seed)
            outs.append(model(batch)["pred_translation"])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])


def test_shared_crops_through_rgb_index_equal_repeated_crops():
    cfg = load(LITE)
    model = build(cfg).eval()
    batch = make_batch(cfg, 3)
    batch["rgb"][2] = batch["rgb"][0]  # rows 0 and 2: two point samples of one object
    shared = {**batch, "rgb": batch["rgb"][:2], "rgb_index": torch.tensor([0, 1, 0])}
    outs = []
    with torch.no_grad():
        for b in (batch, shared):
            model.queue_generator.manual_seed(0)
            outs.append(model(b))
    for key in outs[0]:
        torch.testing.assert_close(outs[1][key], outs[0][key], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="rgb_index"):
        model({**shared, "rgb_index": torch.tensor([0, 1, 2])})  # crop 2 does not exist


def test_training_outputs_a_queue_entry_per_sample_that_push_routes_by_category():
    cfg = load(LITE)
    model = build(cfg).train()
    batch = make_batch(cfg, 3)
    out = model(batch)
    model.queue.push(out["queue_feat"], batch["category_label"])
    torch.testing.assert_close(model.queue.entries[batch["category_label"], -1], out["queue_feat"])


def test_augmentation_mapping_inverts_the_point_transform():
    cfg = load(LITE)
    model = build(cfg)
    pts = torch.randn(4, 50, 3)
    dr, dt, ds = model.sample_augmentation(4, pts.device)
    torch.testing.assert_close(dr @ dr.transpose(1, 2), torch.eye(3).expand(4, 3, 3), atol=1e-6, rtol=0)
    aug = ((pts - dt) / ds) @ dr
    torch.testing.assert_close((aug @ dr.transpose(1, 2)) * ds + dt, pts, atol=1e-6, rtol=0)
    assert bool(((ds >= 0.8) & (ds <= 1.2)).all()) and bool((dt.abs() <= 0.02).all())


def test_configs_reject_unknown_keys_and_inconsistent_widths():
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(CleanPoseConfig, {"causal": {"quue": {}}})
    data = to_dict(load_yaml(CleanPoseConfig, LITE))
    data["gafa"]["d_model"] = 96
    with pytest.raises(ConfigError, match="gafa.d_model"):
        from_dict(CleanPoseConfig, data)


def test_bad_batches_raise_errors_naming_the_key():
    cfg = load(LITE)
    model = build(cfg).eval()
    batch = make_batch(cfg, 1)
    with pytest.raises(ValueError, match="category_label"):
        model({**batch, "category_label": torch.tensor([6])})
    with pytest.raises(ValueError, match="rgb"):
        model({**batch, "rgb": torch.zeros(1, 3, 100, 100)})
    with pytest.raises(KeyError, match="choose"):
        model({k: v for k, v in batch.items() if k != "choose"})


def test_state_dict_round_trip_keeps_the_queue():
    cfg = load(LITE)
    a, b = build(cfg).train(), build(load(LITE, seed=5))
    a.queue.push(torch.randn(4, cfg.feat_dim), torch.tensor([0, 1, 1, 5]))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.queue.entries, a.queue.entries, rtol=0, atol=0)


def test_model_info_cli_prints_counts_per_module(capsys):
    import argparse

    from cleanpose_core.models import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["model-info", "--config", LITE, "--json", "--no-teacher"])
    assert args.func(args) == 0
    info = json.loads(capsys.readouterr().out)
    model = build(load(LITE))
    assert info["trainable"] == trainable(model)
    assert info["modules"]["fd_encoder"]["trainable"] == trainable(model.fd_encoder)
    assert info["modules"]["queue"]["buffers"] > 0
