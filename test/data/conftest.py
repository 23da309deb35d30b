"""Fixtures of the data-reader tests: tiny trees in the real on-disk formats (writers in data_fixtures.py)."""

import pytest
from data_fixtures import write_camera_tree, write_housecat_scene, write_real_tree

from cleanpose_core.geometry.camera import CAMERA25_INTRINSICS, REAL275_INTRINSICS, Intrinsics

REAL_K = Intrinsics(*REAL275_INTRINSICS)
CAMERA_K = Intrinsics(*CAMERA25_INTRINSICS)


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nocs_camera")
    write_camera_tree(root, CAMERA_K)
    return root


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nocs_real")
    write_real_tree(root, REAL_K)
    return root


@pytest.fixture(scope="module")
def housecat_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("housecat6d")
    write_housecat_scene(root, "scene01")
    write_housecat_scene(root, "test_scene1", n_images=1)
    return root
