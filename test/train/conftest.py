"""Fixtures shared by the training tests."""

import pickle

import numpy as np
import pytest


@pytest.fixture
def dpdn_root(tmp_path):
    """obj_models/real_train.pkl: 10 models (unit-diagonal boxes), and label pickles naming categories."""
    rng = np.random.default_rng(0)
    clouds, class_ids, scales = {}, [], []
    for m in range(10):
        extent = rng.uniform(0.3, 1.0, 3)
        extent /= np.linalg.norm(extent)  # NOCS: unit bbox diagonal
        clouds[f"model_{m}"] = (rng.uniform(-0.5, 0.5, (1024, 3)) * extent).astype(np.float32)
        class_ids.append(m % 6 + 1)
        scales.append(0.1 + 0.02 * m)
    (tmp_path / "obj_models").mkdir()
    with open(tmp_path / "obj_models" / "real_train.pkl", "wb") as f:
        pickle.dump(clouds, f)
    scene = tmp_path / "real" / "train" / "scene_1"
    scene.mkdir(parents=True)
    for img, members in enumerate([range(0, 5), range(5, 10)]):
        members = list(members)
        label = {"class_ids": [class_ids[m] for m in members], "model_list": [f"model_{m}" for m in members],
                 "scales": np.array([scales[m] for m in members]),
                 "instance_ids": list(range(1, len(members) + 1))}
        with open(scene / f"{img:04d}_label.pkl", "wb") as f:
            pickle.dump(label, f)
    return tmp_path
