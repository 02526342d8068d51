"""Containment: a hostile submission slows, fills or crashes nothing beyond its own grading. Each grading goes
through the real `grader` command (sandbox, cgroups, result files and report) and must end within 2 minutes with
every file written; the kernel's own accounting shows what the job was allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SUBMISSIONS

from grader import load_assignment
from grader.sandbox import Limits, cgroups, run_task
from grader.sandbox.cleanup import remove_tree
from grader.sandbox.isolation import host_support

HOSTILE = SUBMISSIONS / "hostile"
GRADER = Path(sys.executable).parent / "grader"
CG = cgroups.host()
requires_cgroups = pytest.mark.skipif(
    not {"cpuacct", "memory", "pids"} <= CG.features, reason=f"no job cgroups here: {CG.problem}"
)


def grade_cli(name: str, out: Path, *extra: str) -> tuple[dict, float]:
    """`grader grade` on a hostile file; its result.json and the wall time. Fails unless every file is written."""
    t0 = time.monotonic()
    done = subprocess.run(
        [str(GRADER), "grade", str(HOSTILE / f"{name}.py"), "--out", str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    for written in ("result.json", "results.json", "report.pdf"):
        assert (out / written).stat().st_size > 0, written
    return json.loads((out / "result.json").read_text()), seconds


def failures(result: dict) -> dict[str, str]:
    """check id -> the kind of sandbox failure behind it (checks that ran: absent)."""
    kinds = {c["id"]: c["failure"]["kind"] for c in result["checks"] if c.get("failure")}
    if result["submission"].get("load_failure"):
        kinds["load"] = result["submission"]["load_failure"]["kind"]
    return kinds


@pytest.mark.slow
@requires_cgroups
def test_cpu_fork_bomb_in_the_model_factories_is_contained(tmp_path):
    result, seconds = grade_cli("cpu_fork_bomb", tmp_path)
    assert seconds < 120, seconds
    kinds = failures(result)
    assert {kinds[c] for c in ("sigma_sweep", "activation_stats", "dropout")} <= {"process_limit", "cpu_time"}, kinds
    # The kernel's count of each job's CPU time: never above its budget, nor all of them above the grading's
    # (plus what a quarter-second check and the stack dump at the end can let through on two CPUs).
    limits = load_assignment().limits
    slack = 3.0
    for run in result["runs"]:
        assert run["cpu_seconds"] is not None and run["cpu_seconds"] < limits.cpu_budget(run["name"]) + slack, run
    assert sum(r["cpu_seconds"] for r in result["runs"]) < limits.grading_cpu_budget() + 2 * slack
    assert "pids" in result["isolation"]["cgroup"] and "cpu" in result["isolation"]["cgroup"]


@pytest.mark.slow
@requires_cgroups
def test_memory_bomb_over_many_processes_meets_the_jobs_memory_limit(tmp_path):
    result, seconds = grade_cli("memory_bomb_processes", tmp_path)
    assert seconds < 120, seconds
    kinds = failures(result)
    assert kinds["sigma_sweep"] == "memory" and kinds["dropout"] == "memory", kinds
    limit = result["isolation"]["limits"]["memory_mb"]
    for run in result["runs"]:
        assert run["memory_peak_mb"] is not None and run["memory_peak_mb"] <= limit + 1, run
    check = next(c for c in result["checks"] if c["id"] == "sigma_sweep")
    assert f"more than {limit} MB of memory" in check["message"]


@pytest.mark.slow
def test_sleeping_code_is_stopped_by_its_idle_budget(tmp_path):
    result, seconds = grade_cli("sleeper", tmp_path)
    assert seconds < 120, seconds
    kinds = failures(result)
    expected = "idle" if "cpuacct" in CG.features else "timeout"
    assert kinds["sigma_sweep"] == expected and kinds["activation_stats"] == expected, kinds


@pytest.mark.skipif(host_support().bwrap is None, reason="the job folder is a tmpfs only under bubblewrap")
def test_a_deep_tree_with_big_files_stays_in_the_jobs_memory(tmp_path):
    before = _disk_free()
    result, seconds = grade_cli("disk_tree", tmp_path / "out", "--fast")
    assert seconds < 120, seconds
    assert result["submission"]["load_failure"] is None or result["submission"]["load_failure"]["kind"] in (
        "memory",
        "output_limit",
    )
    assert abs(_disk_free() - before) < 200 * 1024 * 1024  # nothing of it stayed on the disk
    assert not list(Path("/tmp").glob("labgrader-job-*/job/d"))


def test_cleanup_removes_a_3000_deep_tree_without_following_links(tmp_path):
    root, outside = tmp_path / "job", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for depth in range(3000):
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
        if depth % 1000 == 0:
            os.symlink(outside, "link", dir_fd=fd)
            os.open("f", os.O_WRONLY | os.O_CREAT, 0o000, dir_fd=fd)
    os.fchmod(fd, 0o500)  # a folder its owner may not write to
    os.close(fd)
    assert remove_tree(root)
    assert not root.exists()
    assert (outside / "keep").read_text() == "kept"


def _disk_free() -> int:
    stats = os.statvfs("/tmp")
    return stats.f_bavail * stats.f_frsize


@pytest.mark.slow
@requires_cgroups
def test_an_honest_task_on_a_crowded_machine_is_not_stopped(tmp_path):
    """Twelve busy processes outside the sandbox leave the job a fraction of a CPU: it takes many times its CPU time in
    wall time and still ends well, since its budget counts the CPU it received, and waiting for a CPU is no idling."""
    path = tmp_path / "honest.py"
    path.write_text("import torch\n\nx = torch.randn(256, 256)\nfor _ in range(3000):\n    x = torch.tanh(x @ x)\n")
    # each in a session of its own: a scheduler autogroup each, as twelve users' programs would be
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(12)]
    time.sleep(1)  # all of them running
    try:
        limits = Limits(cpu_seconds=15, idle_seconds=3, wall_seconds=600)
        reply = run_task(path, "load", params={}, inputs={}, limits=limits, threads=1)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert reply.ok, reply.failure
    assert reply.wall_seconds > 2 * reply.cpu_seconds + limits.idle_seconds, (reply.wall_seconds, reply.cpu_seconds)
