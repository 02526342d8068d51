"""Starting the child, enforcing the wall-clock limit and leaving no process behind (trusted side)."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.sandbox.isolation import Launch

#: How long to wait for killed processes to disappear before giving up on them.
_REAP_TIMEOUT_S = 30.0
_REAP_POLL_S = 0.01
#: How often ``on_tick`` runs while the child works.
_TICK_S = 0.5


@dataclass(frozen=True)
class ChildExit:
    """How the child's process tree ended."""

    timed_out: bool
    #: Exit code, or None when the child was killed by a signal.
    exit_code: int | None
    #: Signal that killed the child (exit codes above 128 are read as signals, like a shell does).
    signal: int | None
    #: CPU time of the child and all descendants that were waited for.
    cpu_seconds: float
    wall_seconds: float
    log_tail: bytes


def run_child(
    launch: Launch,
    log_path: Path,
    stdin_data: bytes,
    wall_seconds: float,
    tail_bytes: int,
    on_tick: Callable[[], None] | None = None,
) -> ChildExit:
    """Run ``launch`` in a new session with its stdout and stderr written to ``log_path``, calling
    ``on_tick`` about twice a second while it runs.

    ``stdin_data`` is written to the child's stdin (it must fit in a pipe buffer). On return, the child
    and every process in its process group are gone; processes in its PID namespace die with it.
    """
    log_fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        start = time.monotonic()
        pid = _spawn(launch, log_fd, stdin_data)
        try:
            timed_out = not _wait_exit(pid, wall_seconds, on_tick)
        finally:
            _kill_group(pid)
            _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        tail = _tail(log_fd, tail_bytes)
    finally:
        os.close(log_fd)
    code = os.waitstatus_to_exitcode(status)
    sig = -code if code < 0 else code - 128 if code > 128 and _is_signal(code - 128) else None
    return ChildExit(
        timed_out=timed_out,
        exit_code=None if sig is not None else code,
        signal=sig,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        wall_seconds=wall,
        log_tail=tail,
    )


def _spawn(launch: Launch, log_fd: int, stdin_data: bytes) -> int:
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(
            launch.argv[0],
            launch.argv,
            launch.env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(read_end)
    try:
        os.write(write_end, stdin_data)
    except BrokenPipeError:  # the child is already gone; its exit status tells why
        pass
    finally:
        os.close(write_end)
    return pid


def _wait_exit(pid: int, timeout_s: float, on_tick: Callable[[], None] | None) -> bool:
    """Wait (without reaping) until ``pid`` exits; False on timeout."""
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + timeout_s
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while (remaining := deadline - time.monotonic()) > 0:
            if poller.poll(min(remaining, _TICK_S) * 1000):
                return True
            if on_tick is not None:
                on_tick()
        return bool(poller.poll(0))
    finally:
        os.close(pidfd)


def _kill_group(pgid: int) -> None:
    """SIGKILL the group until none of its processes is alive.

    Must run before the group leader ``pgid`` is reaped, so that the id cannot be reused meanwhile.
    The PID-namespace init is in the group, and it dies only after every process of its namespace.
    """
    deadline = time.monotonic() + _REAP_TIMEOUT_S
    while _group_alive(pgid) and time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(_REAP_POLL_S)


def _group_alive(pgid: int) -> bool:
    """Whether a non-zombie process of process group ``pgid`` exists (scans /proc)."""
    with os.scandir("/proc") as entries:
        pids = [entry.name for entry in entries if entry.name.isdigit()]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat_file:
                fields = stat_file.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _tail(fd: int, size: int) -> bytes:
    end = os.fstat(fd).st_size
    start = max(0, end - size)
    return os.pread(fd, end - start, start) if size else b""


def _is_signal(number: int) -> bool:
    try:
        signal.Signals(number)
    except ValueError:
        return False
    return True
