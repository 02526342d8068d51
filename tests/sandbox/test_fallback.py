"""Hosts without bubblewrap: rlimits plus a private PID namespace, or rlimits and a process group alone."""

from __future__ import annotations

import dataclasses
import json

import pytest

from grader.sandbox import cgroups, detect_isolation, isolation

from .helpers import HOST, HOSTILE, LIMITS, forward, requires_pid_namespace, requires_process_limit, run


@pytest.fixture
def without_bwrap(monkeypatch):
    host = dataclasses.replace(HOST, bwrap=None)
    monkeypatch.setattr(isolation, "host_support", lambda: host)


@pytest.fixture
def without_namespaces(monkeypatch):
    """rlimits and a process group alone: no bubblewrap, no PID namespace and no cgroups."""
    host = dataclasses.replace(HOST, bwrap=None, unshare=None, pid_max=False)
    monkeypatch.setattr(isolation, "host_support", lambda: host)
    monkeypatch.setattr(cgroups, "host", lambda: cgroups.CgroupHost(None, problem="none in this test"))


def test_isolation_says_what_is_missing(without_bwrap):
    described = detect_isolation(LIMITS)
    assert described.method == "rlimits" and not described.network_isolated
    assert "No filesystem isolation" in described.filesystem
    assert any("Bubblewrap is not available" in note for note in described.notes)


@requires_pid_namespace
def test_works_and_cleans_up_in_a_pid_namespace(without_bwrap, monkeypatch):
    reply = forward(HOSTILE / "background.py")
    assert reply.ok and reply.tensors["y"].shape == (5, 2), reply.failure
    monkeypatch.setenv("SECRET_API_TOKEN", "hunter2-do-not-leak")
    reply = run(HOSTILE / "env_secrets.py")
    env = json.loads(next(line for line in reply.log_tail.splitlines() if line.startswith("ENV "))[4:])
    assert "SECRET_API_TOKEN" not in env


@requires_process_limit
def test_process_limit_holds_without_bubblewrap(without_bwrap):
    reply = run(HOSTILE / "fork_bomb.py", limits=LIMITS.model_copy(update={"wall_seconds": 40}))
    assert reply.failure.kind == "process_limit", reply.failure


def test_process_group_is_killed_without_namespaces(without_namespaces):
    assert any("processes that start their own session can survive" in n for n in detect_isolation(LIMITS).notes)
    reply = run(HOSTILE / "loop_import.py", limits=LIMITS.model_copy(update={"wall_seconds": 4}))
    assert reply.failure.kind == "timeout"
    assert run(HOSTILE / "os_exit_import.py").failure.kind == "exit"
