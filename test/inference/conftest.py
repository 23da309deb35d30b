"""Fixtures for the Estimator: a lite model file with random weights and one rendered synthetic frame."""

import json

import numpy as np
import pytest
import torch
import yaml

from cleanpose_core import NOCS_CATEGORIES
from cleanpose_core.config import from_dict, to_dict


@pytest.fixture(scope="session")
def lite_model_file(tmp_path_factory):
    """A `cleanpose train`-format model file holding a randomly initialised lite network."""
    from cleanpose_core.models.cleanpose import CleanPoseConfig, build_model
    from cleanpose_core.train.checkpoint import trainable_state_dict

    data = yaml.safe_load(open("config/model/cleanpose_lite.yaml"))
    data["kd"]["teacher_weights"] = None
    cfg = from_dict(CleanPoseConfig, data)
    torch.manual_seed(0)
    model = build_model(cfg, teacher=False)
    path = tmp_path_factory.mktemp("model") / "lite_random.pt"
    torch.save({"format": "cleanpose-model-1", "model": trainable_state_dict(model),
                "model_config": to_dict(cfg), "n_points": 512, "step": 0, "seed": 0}, path)
    return path


@pytest.fixture(scope="session")
def mean_sizes_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sizes") / "mean_sizes.json"
    path.write_text(json.dumps({c: [0.1, 0.15, 0.1] for c in NOCS_CATEGORIES}))
    return path


@pytest.fixture(scope="session")
def synthetic_frame():
    """One rendered 640x480 frame of a synthetic test scene with >= 3 objects, its GT masks, labels and poses."""
    pytest.importorskip("open3d")
    from cleanpose_core.data.synthetic.config import SynthConfig
    from cleanpose_core.data.synthetic.generate import intrinsics_of, scene_rng
    from cleanpose_core.data.synthetic.render import SceneRenderer
    from cleanpose_core.data.synthetic.scene import compose_scene
    from cleanpose_core.data.synthetic.writer import object_pose_in_camera

    cfg = SynthConfig()
    for seed in range(50):
        rng = scene_rng(seed, "test", 0)
        scene = compose_scene(rng, "test", cfg.scene, cfg.camera, cfg.render, 1)
        if len(scene.objects) >= 3:
            break
    K = intrinsics_of(cfg)
    frame = SceneRenderer(scene, K, 1, False).render(*scene.camera_poses[0], rng, 0.0)
    masks, labels, poses = [], [], []
    for k, obj in enumerate(scene.objects):
        mask = frame.instance == k
        if mask.sum() >= 200:
            masks.append(mask)
            labels.append(obj.shape.category)
            poses.append(object_pose_in_camera(obj.R_wo, obj.t_wo, frame.R_wc, frame.C))
    return dict(rgb=frame.rgb, depth=frame.depth.astype(np.float32), K=K, masks=np.stack(masks), labels=labels,
                poses=poses)
