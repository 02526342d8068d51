"""The one place that decides where models run."""

from __future__ import annotations

import os

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'. Asking for 'cuda' without one is an error."""
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not {choice!r}")
    import torch  # here, not at the top: `grader report` reads DEVICE_CHOICES and needs no torch (1 s to import)

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device cpu or auto.")
    return choice


#: cuBLAS needs a fixed workspace to give the same results run after run; set before CUDA starts.
CUDA_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def deterministic(device: str) -> None:
    """The reproducibility settings torch offers for `device`: on CUDA, cuDNN's deterministic kernels without
    autotuning, and torch's deterministic algorithms (a warning, not an error, where an op has none). The CPU
    kernels torch uses here are deterministic for a fixed thread count already."""
    if device != "cuda":
        return
    import torch

    os.environ.update(CUDA_ENV)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
