"""Hostile submissions (tests/submissions/hostile): each ends as a clear failure of the right kind, or as a
harmless normal reply, quickly, and leaves no process behind (see conftest.py)."""

from __future__ import annotations

import ast
import errno
import json
import os
import platform
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.sandbox import SandboxReply

from .helpers import (
    HOST,
    HOSTILE,
    LIMITS,
    ORPHAN_MARKER,
    forward,
    processes_with,
    requires_bwrap,
    requires_pid_namespace,
    requires_process_limit,
    run,
)

QUICK = LIMITS.model_copy(update={"wall_seconds": 5})
#: The 64-process limit is reached fast, but forking a process that has imported torch is slow.
BOMB = LIMITS.model_copy(update={"wall_seconds": 40})
LABELS = Path("/usr/share/datasets/fashion-mnist")
PICKLE_MARKER = Path("/tmp/labgrader-pickle-pwned")


def assert_failure(reply: SandboxReply, kind: str, *words: str) -> None:
    """A failure of ``kind`` whose message contains ``words`` and shows nothing of the grader's insides."""
    assert not reply.ok and reply.failure is not None, reply
    failure = reply.failure
    assert failure.kind == kind, failure
    for word in words:
        assert word in failure.message, failure.message
    shown = failure.message + (failure.traceback or "")
    for internal in ("/opt/labgrader", "labgrader-job", "child.py", "/job/"):
        assert internal not in shown, shown
    assert reply.meta == {} and reply.tensors == {}


@pytest.mark.parametrize(
    "name,kind,words,traceback",
    [
        (
            "syntax_error",
            "syntax_error",
            ["syntax error on line 6"],
            '  File "syntax_error.py", line 6\n    def circle_model(sigma=None:\n'
            "                               ^\nSyntaxError: invalid syntax",
        ),
        (
            "import_exception",
            "import_error",
            ["KeyError: 'epochs'", '__name__ == "__main__"'],
            'Traceback (most recent call last):\n  File "import_exception.py", line 9, in <module>\n'
            '    EPOCHS = load_settings()\n  File "import_exception.py", line 6, in load_settings\n'
            "    return settings[\"epochs\"]\nKeyError: 'epochs'",
        ),
        ("sys_exit_import", "exit", ["sys.exit()", "code 3"], "line 6, in <module>\n    sys.exit(3)\nSystemExit: 3"),
        ("os_exit_import", "exit", ["exit code 7", "os._exit()"], None),
        ("memory_list", "memory", ["out of memory (limit 2048 MB)"], "\nMemoryError"),
        ("memory_tensor", "memory", ["out of memory (limit 2048 MB)"], "DefaultCPUAllocator: can't allocate memory"),
        ("print_forever", "output_limit", ["more than 16 MB"], "OSError: [Errno 27] File too large"),
        ("segfault", "crash", ["SIGSEGV"], "line 5, in <module>\n    ctypes.string_at(0)\nFatal Python error"),
    ],
)
def test_file_that_cannot_be_loaded(name, kind, words, traceback):
    reply = run(HOSTILE / f"{name}.py")
    assert_failure(reply, kind, *words)
    if traceback is None:
        assert reply.failure.traceback is None
    else:
        assert traceback in reply.failure.traceback, reply.failure.traceback
    assert reply.wall_seconds < 10


def test_infinite_loop_at_import_times_out():
    reply = run(HOSTILE / "loop_import.py", limits=QUICK)
    assert_failure(reply, "timeout", "within 5 s", "top level of your file")
    assert re.search(r'File "loop_import.py", line [45], in <module>', reply.failure.traceback)  # in the loop
    assert reply.wall_seconds < QUICK.wall_seconds + 2


def test_infinite_loop_in_circle_model_times_out():
    reply = forward(HOSTILE / "loop_in_model.py", limits=QUICK)
    assert_failure(reply, "timeout", "within 5 s", "circle_model()")
    assert re.search(r'File "loop_in_model.py", line [78], in circle_model', reply.failure.traceback)


@requires_process_limit
@pytest.mark.parametrize("name", ["fork_bomb", "multiprocessing_bomb"])
def test_process_bomb_hits_the_process_limit(name):
    reply = run(HOSTILE / f"{name}.py", limits=BOMB)
    assert_failure(reply, "process_limit", "more than 64 processes and threads")
    assert reply.wall_seconds < 20  # stopped when it reached the limit, not at the time limit


def test_forged_reply_is_rejected():
    reply = run(HOSTILE / "fake_reply.py")
    assert_failure(reply, "invalid_reply", "reply.json was not written by the grader")


def test_pickled_outputs_are_never_unpickled():
    PICKLE_MARKER.unlink(missing_ok=True)
    reply = forward(HOSTILE / "pickle_outputs.py")
    assert_failure(reply, "invalid_reply", "not a valid safetensors file")
    assert not PICKLE_MARKER.exists()


def test_monkeypatching_libraries_does_not_break_the_reply():
    reply = forward(HOSTILE / "monkeypatch.py")
    assert reply.ok, reply.failure
    assert reply.tensors["y"].shape == (5, 2)


@requires_pid_namespace
def test_background_thread_and_processes_are_killed():
    reply = forward(HOSTILE / "background.py")
    assert reply.ok, reply.failure
    assert processes_with(ORPHAN_MARKER) == []


def test_nan_output_is_just_data():
    reply = forward(HOSTILE / "nan_forward.py")
    assert reply.ok and np.isnan(reply.tensors["y"]).all()


def test_wrong_output_shape_breaks_the_contract():
    reply = forward(HOSTILE / "wrong_shape.py")
    assert_failure(reply, "contract", "shape (5, 3)", "the expected shape is (any, 2)")


def test_non_tensor_output_breaks_the_contract():
    reply = forward(HOSTILE / "non_tensor.py")
    assert_failure(reply, "contract", "must return a tensor", "'list'")


def printed(reply: SandboxReply, prefix: str) -> str:
    """The rest of the line the submission printed after ``prefix``."""
    assert reply.ok, reply.failure
    return next(line for line in reply.log_tail.splitlines() if line.startswith(prefix)).removeprefix(prefix)


@requires_bwrap
def test_network_is_unreachable():
    reply = run(HOSTILE / "network.py")
    lines = [line for line in reply.log_tail.splitlines() if line.startswith("NETWORK")]
    assert len(lines) == 2 and all(" blocked " in line for line in lines), lines


@requires_bwrap
def test_environment_holds_no_secrets(monkeypatch):
    monkeypatch.setenv("SECRET_API_TOKEN", "hunter2-do-not-leak")
    reply = run(HOSTILE / "env_secrets.py")
    env = json.loads(printed(reply, "ENV "))
    assert "hunter2-do-not-leak" not in reply.log_tail
    assert set(env) <= {"PATH", "HOME", "LANG", "PWD", "OMP_NUM_THREADS", "MKL_NUM_THREADS"} | {
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
    }


@requires_bwrap
def test_filesystem_shows_only_the_job_and_private_tmp():
    reply = run(HOSTILE / "filesystem_probe.py", hidden_paths=[LABELS])
    report = json.loads(printed(reply, "FS "))
    assert report.pop("write /job/scratch") == report.pop("write /tmp/scratch") == "ok: 'written'"
    assert report.pop("list labels folder") == "ok: []"
    for folder in ("/root", "/work"):  # visible only as far as they lead to the Python installation
        outcome = report.pop(f"list {folder}")
        if outcome.startswith("ok"):
            for entry in ast.literal_eval(outcome.removeprefix("ok: ")):
                assert any(p.startswith(f"{folder}/{entry}/") for p in (sys.prefix, sys.base_prefix)), entry
    for attempt, outcome in report.items():
        assert outcome.startswith("denied"), (attempt, outcome)
    for escaped in ("/work/main/labgrader-escape", "/etc/labgrader-escape", "/usr/labgrader-escape"):
        assert not Path(escaped).exists()


@requires_bwrap
def test_the_students_code_has_no_privileges_and_no_dangerous_syscalls():
    reply = run(HOSTILE / "privileges.py")
    report = json.loads(printed(reply, "PRIV "))
    assert report["CapEff"] == report["CapPrm"] == report["CapBnd"] == "0000000000000000", report
    assert report["NoNewPrivs"] == "1"
    if os.geteuid() == 0:  # the grader's root maps the student to an unprivileged host uid, never to 0
        host_uid = HOST.sandbox_host_uid
        assert report["uid"] != 0 and host_uid not in (None, 0)
        inside, outside = report["uid_map"][-3], report["uid_map"][-2]
        assert (int(inside), int(outside)) == (report["uid"], host_uid), report["uid_map"]
    if HOST.seccomp is not None and platform.machine() == "x86_64":
        assert report["Seccomp"] == "2"
        for call in ("io_uring_setup", "keyctl", "bpf", "ptrace_traceme", "unshare_user", "mount"):
            assert report[call] == f"errno {errno.EPERM}", (call, report[call])
    assert report["kill_init"] == f"errno {errno.EPERM}"  # bubblewrap's init, in a namespace of the student's own
    assert report["nice_down"] == f"errno {errno.EACCES}"
