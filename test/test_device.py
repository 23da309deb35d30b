import logging

import pytest
import torch

from cleanpose_core.device import check_device_name, resolve_device


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_explicit_names_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_garbage_name_is_a_value_error():
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_missing_cuda_raises_or_falls_back(name, caplog):
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(name)
    with caplog.at_level(logging.WARNING, logger="cleanpose_core.device"):
        assert resolve_device(name, fallback_to_cpu=True) == torch.device("cpu")
    assert "using the CPU" in caplog.text


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_check_accepts_the_documented_names_without_a_gpu(name):
    check_device_name(name)  # no CUDA here: the name check must not need one


@pytest.mark.parametrize("name", ["gpu0", "cudax", "meta", "mps", ""])
def test_check_rejects_other_names(name):
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        check_device_name(name)
