"""Helpers for the sandbox tests: small limits, the hostile submissions, and finding leftover processes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from grader.sandbox import Limits, SandboxReply, run_task
from grader.sandbox.isolation import host_support

HOSTILE = Path(__file__).resolve().parents[1] / "submissions" / "hostile"
LIMITS = Limits(wall_seconds=20, cpu_seconds=60, memory_mb=2048, processes=64, output_mb=16)
X = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
#: Marks processes that hostile submissions try to leave behind.
ORPHAN_MARKER = "LABGRADER_ORPHAN_MARKER"

HOST = host_support()
requires_bwrap = pytest.mark.skipif(HOST.bwrap is None, reason="bubblewrap does not work here")
#: Without a PID namespace, processes that start their own session outlive the job.
requires_pid_namespace = pytest.mark.skipif(HOST.unshare is None, reason="no private PID namespaces here")
#: Without pid_max in a PID namespace, nothing limits processes run by root: a fork bomb would hurt the host.
requires_process_limit = pytest.mark.skipif(not HOST.pid_max, reason="the process limit is not enforceable here")


def run(submission: Path, task: str = "load", limits: Limits = LIMITS, **kwargs: object) -> SandboxReply:
    """Run ``task`` with the small test limits, one thread and no inputs unless given."""
    kwargs.setdefault("params", {})
    kwargs.setdefault("inputs", {})
    return run_task(submission, task, limits=limits, threads=1, **kwargs)


def forward(submission: Path, limits: Limits = LIMITS, **params: object) -> SandboxReply:
    """Run the builtin "forward" task of ``circle_model`` on five 2-D points, expecting (5, 2) outputs."""
    spec = {"factory": "circle_model", "expected_shape": [-1, 2], **params}
    return run(submission, "forward", limits, params=spec, inputs={"x": X})


def processes_with(text: str) -> list[str]:
    """Command lines of the running processes that contain ``text`` (this test process excluded)."""
    with os.scandir("/proc") as entries:
        pids = [entry.name for entry in entries if entry.name.isdigit() and int(entry.name) != os.getpid()]
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(f"{pid}: {command[:200]}")
    return found
