"""Running one task on a student submission in the sandbox (trusted side).

:func:`run_task` never raises for anything the student's code can cause: every outcome becomes a
:class:`SandboxReply`, with a :class:`SandboxFailure` that tells the student what to do when the
task did not complete. It raises only for grader bugs (unknown task, bad params or inputs, a missing
submission file, a hidden path that would hide the sandbox's own files).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import safetensors.numpy

from grader.sandbox.cgroups import GradingCgroup, JobCgroup, grading_cgroup
from grader.sandbox.cleanup import remove_tree
from grader.sandbox.isolation import job_dir, launch
from grader.sandbox.outcome import reply_for
from grader.sandbox.process import Budget, run_child
from grader.sandbox.protocol import (
    ALLOWED_DTYPES,
    INPUTS_FILE,
    OUTPUTS_FD,
    OUTPUTS_FILE,
    PROGRESS_FD,
    PROGRESS_FILE,
    REPLY_FD,
    REPLY_FILE,
    REQUEST_FILE,
    SUBMISSION_FILE,
    TENSOR_NAME_RE,
    ForwardParams,
    Limits,
    TaskRequest,
)
from grader.sandbox.reply import SandboxReply

BUILTIN_TASKS = ("load", "forward", "build")  # student jobs; every other task is a trusted one


def run_task(
    submission: Path | None,
    task: str,
    *,
    params: dict,
    inputs: dict[str, np.ndarray],
    limits: Limits,
    device: Literal["cpu", "cuda"] = "cpu",
    threads: int | None = None,
    hidden_paths: Sequence[Path] = (),
    progress: Callable[[int, int], None] | None = None,
    group: GradingCgroup | None = None,
) -> SandboxReply:
    """Run ``task`` on ``submission`` in a fresh sandboxed child process and return its validated reply.

    ``params`` (JSON data) and ``inputs`` (arrays of the dtypes in ``ALLOWED_DTYPES``) are handed to
    the task. ``threads`` sets torch's and OpenMP's thread count. ``hidden_paths`` are folders (or
    files) the child must not see, e.g. folders holding labels; only bubblewrap can hide them.
    ``progress(done, total)`` is called while the task runs, with what the task last reported (display only).
    ``group`` is the grading's cgroup, whose CPU share the job gets; without one, the job gets a group of its
    own limited to ``threads`` CPUs (where the host has cgroups).
    """
    request = _request(task, params, device, threads, limits, deadline=time.time() + limits.wall_seconds)
    _check_inputs(inputs)
    if (submission is None) != (task not in BUILTIN_TASKS):
        raise ValueError(f"task {task!r} {'needs' if submission is None else 'must not get'} a submission")
    if submission is not None and not Path(submission).is_file():
        raise FileNotFoundError(f"submission {submission} does not exist")
    token = secrets.token_hex(32)
    root = Path(tempfile.mkdtemp(prefix="labgrader-job-"))
    try:
        job = job_dir(root)
        job.mkdir()
        if submission is not None:
            shutil.copyfile(submission, job / SUBMISSION_FILE)
        (job / REQUEST_FILE).write_text(request.model_dump_json())
        arrays = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        safetensors.numpy.save_file(arrays, job / INPUTS_FILE)
        for name in (SUBMISSION_FILE, REQUEST_FILE, INPUTS_FILE):  # the sandbox's user reads them
            if not (job / name).exists():
                continue
            (job / name).chmod(0o444)
        with _job_cgroup(group, limits, threads) as cgroup, _out_files(job) as fds:
            spec = launch(
                root, limits=limits, device=device, threads=threads, hidden_paths=hidden_paths,
                prefix=cgroup.enter_prefix() if cgroup is not None else (),
            )  # fmt: skip
            on_tick = None if progress is None else lambda: _forward_progress(job / PROGRESS_FILE, progress)
            spent = group.over_budget if group is not None and group.cpu_budget is not None else None
            budget = Budget(limits.wall_seconds, limits.cpu_seconds, limits.idle_seconds, spent)
            child = run_child(
                spec, root / "log", f"{token}\n".encode(), budget, limits.log_tail_bytes, on_tick, job=cgroup, fds=fds
            )
        source = Path(submission).read_text(errors="replace").splitlines() if submission is not None else []
        shown = Path(submission).name if submission is not None else SUBMISSION_FILE
        return reply_for(child, job, token, limits, _stage(task, params), source, shown_as=shown)
    finally:
        remove_tree(root)


@contextlib.contextmanager
def _job_cgroup(group: GradingCgroup | None, limits: Limits, threads: int | None) -> Iterator[JobCgroup | None]:
    with contextlib.ExitStack() as stack:
        if group is None:
            group = stack.enter_context(grading_cgroup(threads))
        if group is None:
            yield None
            return
        job = group.job(limits.memory_mb, limits.processes)
        stack.callback(job.close)
        yield job


@contextlib.contextmanager
def _out_files(job: Path) -> Iterator[dict[int, int]]:
    """The files the child writes through descriptors (see protocol.REPLY_FD), created empty here."""
    fds: dict[int, int] = {}
    try:
        for number, name in ((REPLY_FD, REPLY_FILE), (OUTPUTS_FD, OUTPUTS_FILE), (PROGRESS_FD, PROGRESS_FILE)):
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fds[number] = os.open(job / name, flags, 0o600)
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)


def _request(task: str, params: dict, device: str, threads: int | None, limits: Limits, deadline: float) -> TaskRequest:
    from grader.tasks import TASKS

    if task not in BUILTIN_TASKS and task not in TASKS:
        raise ValueError(f"unknown sandbox task {task!r}")
    if task == "forward":
        ForwardParams.model_validate(params)
    return TaskRequest(task=task, params=params, device=device, threads=threads, limits=limits, deadline=deadline)


def _check_inputs(inputs: dict[str, np.ndarray]) -> None:
    for name, array in inputs.items():
        if not TENSOR_NAME_RE.fullmatch(name):
            raise ValueError(f"invalid input tensor name {name!r}")
        if not isinstance(array, np.ndarray) or array.dtype.name not in ALLOWED_DTYPES:
            raise ValueError(f"input {name!r} must be a numpy array with a dtype in {sorted(ALLOWED_DTYPES)}")


def _stage(task: str, params: dict) -> str:
    """Where a student should look for slow code, for time-limit messages."""
    if task == "load":
        return "at the top level of your file"
    if task == "forward":
        return f"at the top level of your file or in {params['factory']}() and its forward()"
    if task == "build":
        return "at the top level of your file, in the functions that build your models or in their forward()"
    return "in your model as the grader rebuilt it (its size or the operations its forward runs)"


def _forward_progress(path: Path, progress: Callable[[int, int], None]) -> None:
    """Pass on the task's last "done total" line; the child writes the file, so it is read with care (no
    symlinks, no FIFOs, at most 64 bytes) and anything odd is ignored."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        words = os.read(fd, 64).split() if stat.S_ISREG(os.fstat(fd).st_mode) else []
    finally:
        os.close(fd)
    if len(words) == 2 and all(w.isdigit() for w in words) and 0 < int(words[1]) <= 1_000_000:
        progress(min(int(words[0]), int(words[1])), int(words[1]))
