"""run_task() on well-behaved submissions, on ordinary student mistakes, and on grader misuse."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grader.sandbox import Limits, cgroups, detect_isolation, isolation, run_task

from .helpers import HOST, LIMITS, X, forward, requires_bwrap, run

VALID = """
    import torch
    from torch import nn

    SIGMAS = {"small": 0.01, "good": 1}
    deep_model = nn.Linear


    def circle_model(sigma=None):
        model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
        if sigma is not None:
            with torch.no_grad():
                for layer in model:
                    if isinstance(layer, nn.Linear):
                        layer.weight.normal_(0.0, sigma)
        return model


    def mnist_model(dropout):
        raise ValueError("not written yet")


    def not_a_model():
        return [nn.Linear(2, 2)]
"""


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "student.py"
    path.write_text(textwrap.dedent(source))
    return path


def line_of(code: str) -> int:
    """Line number of ``code`` in VALID."""
    return next(n for n, line in enumerate(textwrap.dedent(VALID).splitlines(), 1) if code in line)


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write(tmp_path, VALID)


def test_load_reports_the_contract_names(valid):
    reply = run(valid)
    assert reply.ok and reply.failure is None, reply.failure
    assert reply.meta == {
        "names": {
            "circle_model": "function",
            "SIGMAS": "dict",
            "deep_model": "other:type",
            "mnist_model": "function",
            "fold_batchnorm": "missing",
            "tanh_model": "missing",
        },
        "sigmas": {"small": 0.01, "good": 1.0},
    }
    assert reply.tensors == {}
    assert 0 < reply.wall_seconds < LIMITS.wall_seconds


def test_forward_returns_the_model_output(valid):
    first = forward(valid, seed=3, args=[0.5])
    again = forward(valid, seed=3, args=[0.5])
    assert first.ok, first.failure
    y = first.tensors["y"]
    assert set(first.tensors) == {"y"} and y.shape == (5, 2) and y.dtype == np.float32
    np.testing.assert_array_equal(y, again.tensors["y"])  # the seed makes the model deterministic


def test_missing_factory_is_reported_by_name(valid):
    reply = run(valid, "forward", params={"factory": "fold_batchnorm"}, inputs={"x": X})
    assert reply.failure.kind == "missing_name"
    assert "`fold_batchnorm`" in reply.failure.message


def test_errors_around_the_factory_are_reported(valid):
    reply = run(valid, "forward", params={"factory": "not_a_model"}, inputs={"x": X})
    assert reply.failure.kind == "contract"
    assert "not_a_model() must return a torch.nn.Module, but it returned a value of type 'list'" in (
        reply.failure.message
    )
    reply = run(valid, "forward", params={"factory": "SIGMAS"}, inputs={"x": X})
    assert reply.failure.kind == "contract" and "`SIGMAS` must be a function" in reply.failure.message


def test_exception_in_student_code_shows_only_the_students_frames(valid):
    reply = run(valid, "forward", params={"factory": "mnist_model", "args": [True]}, inputs={"x": X})
    failure = reply.failure
    assert failure.kind == "exception"
    assert "ValueError: not written yet" in failure.message and "mnist_model" in failure.message
    assert failure.traceback.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "student.py", line {line_of("not written")}, in mnist_model',
        '    raise ValueError("not written yet")',
        "ValueError: not written yet",
    ]
    assert "grader" not in failure.traceback and "/job" not in failure.traceback


def test_sys_exit_inside_a_function_is_an_exit(tmp_path):
    path = write(tmp_path, "import sys\n\ndef circle_model(sigma=None):\n    sys.exit('bye')\n")
    failure = forward(path).failure
    assert failure.kind == "exit" and "'bye'" in failure.message and "circle_model" in failure.message


def test_torch_works_under_the_default_limits(tmp_path):
    path = write(tmp_path, "import torch\n\nA = torch.randn(1000, 1000)\nprint((A @ A).shape)\n")
    reply = run(path, limits=Limits(wall_seconds=30))
    assert reply.ok and "torch.Size([1000, 1000])" in reply.log_tail, (reply.failure, reply.log_tail)


def test_output_of_the_student_is_in_the_log_tail(tmp_path):
    path = write(tmp_path, "import sys\n\nprint('x' * 20000)\nprint('last words', file=sys.stderr)\n")
    reply = run(path, limits=LIMITS.model_copy(update={"log_tail_bytes": 100}))
    assert reply.ok
    assert reply.log_tail.endswith("last words\n") and len(reply.log_tail) == 100


def test_cpu_time_limit(tmp_path):
    path = write(tmp_path, "x = 0\nwhile True: x += 1\n")
    reply = run(path, limits=LIMITS.model_copy(update={"cpu_seconds": 3}))
    assert reply.failure.kind == "cpu_time" and "3 s of CPU time" in reply.failure.message
    assert 'File "student.py", line 2, in <module>\n    while True: x += 1' in reply.failure.traceback


@requires_bwrap
def test_detect_isolation_reports_bubblewrap():
    isolation = detect_isolation(LIMITS)
    assert isolation.method == "bubblewrap" and isolation.network_isolated
    assert isolation.limits == LIMITS
    assert "/job" in isolation.filesystem
    if "pids" in cgroups.host().features:
        expected = "at most 64 processes and threads at once for the whole job (cgroup)"
    else:
        expected = "at most 64 to 364 processes" if HOST.pid_max else "Processes:"
    assert any(expected in note for note in isolation.notes)
    assert isolation.cgroup == sorted(cgroups.host().features & {"cpu", "cpuacct", "memory", "pids"})
    assert isolation.seccomp == (HOST.seccomp is not None)
    if os.geteuid() == 0:  # root maps the student to an unprivileged host uid
        assert isolation.sandbox_uid == HOST.sandbox_host_uid and isolation.sandbox_uid not in (None, 0)


def test_grader_bugs_raise(valid, tmp_path):
    with pytest.raises(ValueError, match="unknown sandbox task"):
        run(valid, "no_such_task")
    with pytest.raises(ValueError):
        run(valid, "forward", params={"args": []})  # no factory
    with pytest.raises(ValueError, match="input"):
        run(valid, inputs={"x": np.zeros(2, dtype=np.complex64)})
    with pytest.raises(ValueError, match="input"):
        run(valid, inputs={"bad name!": np.zeros(2)})
    with pytest.raises(FileNotFoundError):
        run(tmp_path / "absent.py")


@requires_bwrap
def test_hiding_the_sandboxs_own_files_is_refused(valid):
    with pytest.raises(ValueError, match="would hide"):
        run_task(valid, "load", params={}, inputs={}, limits=LIMITS, hidden_paths=[Path("/usr")])


def test_hidden_files_and_folders_are_masked(tmp_path):
    folder, file = tmp_path / "labels", tmp_path / "answers.txt"
    folder.mkdir()
    file.write_text("42")
    args = isolation._mask_args([folder, file, tmp_path / "absent"], needed=["/usr"])
    assert args == ["--tmpfs", str(folder), "--remount-ro", str(folder), "--ro-bind", "/dev/null", str(file)]


def test_a_niced_grading_keeps_its_sandbox_niced_in_its_own_session(tmp_path):
    """The child starts a session, hence a scheduler autogroup, of its own: a nice value only ranks processes
    within their group, so the child must give its group the nice it inherited, or a worker's nice 10 would not
    lower the grading against the API. Run from a niced interpreter, since the test process keeps its nice."""
    import subprocess
    import sys

    path = write(tmp_path, "import os\nprint('GROUP', open('/proc/self/autogroup').read().strip())\n")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import run
        reply = run(Path({str(path)!r}))
        assert reply.ok, reply.failure
        print(next(line for line in reply.log_tail.splitlines() if line.startswith("GROUP")))
    """)
    done = subprocess.run(["nice", "-n", "7", sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    group = done.stdout.strip().splitlines()[-1]
    # A process whose session goes back to init without a setsid is in the kernel's root group, and its
    # /proc/self/autogroup reads empty (seen on a CI machine): the child's own group differs from it all the same.
    own = Path("/proc/self/autogroup").read_text().split()[:1] or ["(root group)"]
    assert group.endswith("nice 7") and group.split()[1] != own[0], group
