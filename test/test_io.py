"""cleanpose_core.io: format tags that shipped files depend on, one error class, and running without
`train`."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cleanpose_core.io import (FORMATS, QUEUE_FORMAT, TEACHER_FORMAT, WeightsError, WeightsNotFoundError,
                               read_artefact, read_weights_file, save_artefact)

REPO = Path(__file__).resolve().parents[1]


def test_format_tags_are_the_ones_files_were_written_with():
    # Changing a tag orphans every file written with it, the shipped ones in models/ included.
    assert sorted(FORMATS) == ["cleanpose-featcache-1", "cleanpose-maskrcnn-1", "cleanpose-model-1",
                               "cleanpose-onnx-1", "cleanpose-point-classifier-1", "cleanpose-queue-1",
                               "cleanpose-teacher-1", "cleanpose-train-1"]
    shipped = sorted((REPO / "models").glob("*.pt"))
    assert len(shipped) >= 5
    for path in shipped:
        tag = read_weights_file(path, "shipped model")["format"]
        assert tag in FORMATS and read_artefact(path, tag)["format"] == tag


def test_missing_file_is_a_weights_error_and_still_a_file_not_found_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"confounder queue: .*not found: .*nothing\.pt") as err:
        read_artefact(tmp_path / "nothing.pt", QUEUE_FORMAT)
    assert isinstance(err.value, WeightsError) and isinstance(err.value, FileNotFoundError)


def test_a_file_of_another_kind_says_what_it_is_and_how_to_make_the_right_one(tmp_path):
    path = save_artefact(tmp_path / "q.pt", QUEUE_FORMAT, queue=torch.zeros(1, 2, 3), source="test")
    with pytest.raises(WeightsError, match=r"q\.pt is not a CleanPose teacher file .*`cleanpose teacher`.*"
                                           r"found format 'cleanpose-queue-1' \(a confounder queue file\)"):
        read_artefact(path, TEACHER_FORMAT)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="list.pt is not a CleanPose teacher file.*found list"):
        read_artefact(tmp_path / "list.pt", TEACHER_FORMAT)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="junk.pt is unreadable"):
        read_artefact(tmp_path / "junk.pt", TEACHER_FORMAT)


def test_save_artefact_tags_the_file_and_refuses_unknown_tags(tmp_path):
    path = save_artefact(tmp_path / "sub" / "q.pt", QUEUE_FORMAT, queue=torch.ones(2), source="s")
    blob = read_artefact(path, QUEUE_FORMAT)
    assert list(blob) == ["format", "queue", "source"] and torch.equal(blob["queue"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["q.pt"]  # no temporary file left
    with pytest.raises(ValueError, match="unknown artefact format 'cleanpose-queue-2'"):
        save_artefact(tmp_path / "x.pt", "cleanpose-queue-2", queue=torch.ones(2))


def test_running_the_shipped_pose_model_does_not_import_train():
    code = ("import sys, torch\n"
            "import cleanpose_core.inference.estimator, cleanpose_core.segmentation.maskrcnn\n"
            "import cleanpose_core.segmentation.rescoring\n"
            "from cleanpose_core.io.pose_model import load_pose_model\n"
            "from cleanpose_core.shipped import shipped_file\n"
            "model, n = load_pose_model(shipped_file('cleanpose_lite.pt'), torch.device('cpu'))\n"
            "print(n, sorted(m for m in sys.modules if m.startswith('cleanpose_core.train')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["512", "[]"]
