"""Where models run, and the reproducibility settings on CUDA (exercised without a GPU: they are flags)."""

import subprocess
import sys

import pytest
import torch

from grader.device import resolve_device


def test_auto_takes_what_torch_sees():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_names_the_choices():
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def _settings_after(device: str) -> list[str]:
    code = (
        "import os, torch; from grader.device import deterministic; "
        f"deterministic({device!r}); "
        "print(torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, "
        "torch.backends.cudnn.benchmark, os.environ.get('CUBLAS_WORKSPACE_CONFIG'))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_cuda_gets_deterministic_kernels_and_a_fixed_cublas_workspace():
    assert _settings_after("cuda") == ["True", "True", "False", ":4096:8"]


def test_cpu_settings_are_left_alone():
    assert _settings_after("cpu") == ["False", "False", "False", "None"]
