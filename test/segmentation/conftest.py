"""Fixtures of the segmentation tests (the dataset writer lives in seg_fixtures.py so tests can import it)."""

import pytest
from seg_fixtures import write_nocs_dataset


@pytest.fixture
def nocs_fixture(tmp_path):
    """(root, records) of a 2-image 120x160 training split."""
    records = write_nocs_dataset(tmp_path / "data", "train", n_images=2)
    return tmp_path / "data", records
