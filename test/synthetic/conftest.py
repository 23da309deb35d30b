"""Small synthetic datasets shared by the tests (rendered once per session into a temporary folder)."""

import pytest

from cleanpose_core.data.synthetic.config import SynthConfig
from cleanpose_core.data.synthetic.generate import generate_split


def small_config(noise: bool = True) -> SynthConfig:
    cfg = SynthConfig()
    cfg.frames_per_scene = 2
    cfg.scene.objects = (3, 6)
    cfg.scene.pool_size = 12  # keeps obj_models/<split>.pkl quick to build
    cfg.noise.enabled = noise
    cfg.render.threads = 1
    return cfg


@pytest.fixture(name="small_config")
def small_config_fixture():
    """The factory above, for tests that build their own datasets."""
    return small_config


@pytest.fixture(scope="session")
def clean_test_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_clean")
    generate_split(out, "test", 3, seed=5, cfg=small_config(noise=False), progress=False)
    return out


@pytest.fixture(scope="session")
def noisy_train_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_noisy")
    generate_split(out, "train", 3, seed=6, cfg=small_config(noise=True), progress=False)
    return out
