"""Fixtures shared by several test folders."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def synthetic_frame():
    """One rendered 640x480 frame of a synthetic test scene with >= 3 objects, its GT masks, labels and
    poses."""
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
    return dict(
        rgb=frame.rgb,
        depth=frame.depth.astype(np.float32),
        K=K,
        masks=np.stack(masks),
        labels=labels,
        poses=poses,
    )
