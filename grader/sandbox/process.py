"""Starting the child, enforcing the wall-clock limit and leaving no process behind (trusted side)."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from grader.sandbox.protocol import SECCOMP_FD

if TYPE_CHECKING:
    from grader.sandbox.cgroups import JobCgroup
    from grader.sandbox.isolation import Launch

#: How long to wait for killed processes to disappear before giving up on them.
_REAP_TIMEOUT_S = 30.0
_REAP_POLL_S = 0.01
#: How often the budget is checked and ``on_tick`` runs while the child works.
_TICK_S = 0.25


StopReason = Literal["timeout", "cpu_time", "grading_cpu", "idle", "process_limit", "memory"]


@dataclass(frozen=True)
class Budget:
    """What a job may use before the grader stops it. CPU and idle time are counted over its cgroup, where it
    has one; wall-clock time is only a backstop, since a busy machine slows every job down."""

    wall_seconds: float
    cpu_seconds: float | None = None
    idle_seconds: float | None = None
    #: True once the grading this job belongs to used up its CPU budget (all its jobs together).
    grading_spent: Callable[[], bool] | None = None


@dataclass(frozen=True)
class ChildExit:
    """How the child's process tree ended."""

    #: Why the grader stopped the job; None when it ended by itself.
    stopped: StopReason | None
    #: Exit code, or None when the child was killed by a signal.
    exit_code: int | None
    #: Signal that killed the child (exit codes above 128 are read as signals, like a shell does).
    signal: int | None
    #: CPU time of the whole job (its cgroup), or of the child and the descendants that were waited for.
    cpu_seconds: float
    wall_seconds: float
    log_tail: bytes
    #: Time the job spent neither running nor waiting for a CPU (None: not measured, no cgroup).
    idle_seconds: float | None = None
    memory_peak_mb: float | None = None

    @property
    def timed_out(self) -> bool:
        return self.stopped == "timeout"


def run_child(
    launch: Launch,
    log_path: Path,
    stdin_data: bytes,
    budget: Budget | float,
    tail_bytes: int,
    on_tick: Callable[[], None] | None = None,
    *,
    job: JobCgroup | None = None,
    fds: dict[int, int] | None = None,
) -> ChildExit:
    """Run ``launch`` in a new session with its stdout and stderr written to ``log_path``, calling
    ``on_tick`` about twice a second while it runs, and stop it when it exceeds ``budget`` (a number: wall
    seconds only).

    ``stdin_data`` is written to the child's stdin (it must fit in a pipe buffer); ``fds`` maps descriptor
    numbers the child must find to open descriptors of ours, on top of ``launch.fds``. ``job`` is the cgroup
    the launch enters: it is watched (CPU, idle time, memory and process limits) and killed at the end. On
    return, the child and every process of its job are gone.
    """
    if not isinstance(budget, Budget):
        budget = Budget(wall_seconds=budget)
    log_fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    watch = _Watch(budget, job)
    try:
        start = time.monotonic()
        pid = _spawn(launch, log_fd, stdin_data, {**launch.fds, **(fds or {})})
        stopped: StopReason | None = None
        try:
            stopped = _wait_exit(pid, budget.wall_seconds, on_tick, watch)
        finally:
            if job is not None:
                if stopped in ("cpu_time", "grading_cpu", "idle"):
                    _dump_stack(job, launch.python)
                job.kill()
            _kill_group(pid)
            _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        tail = _tail(log_fd, tail_bytes)
    finally:
        os.close(log_fd)
    code = os.waitstatus_to_exitcode(status)
    sig = -code if code < 0 else code - 128 if code > 128 and _is_signal(code - 128) else None
    counted = job.usage() if job is not None else None
    if stopped is None and counted is not None:  # killed by the kernel for a job-wide limit at the very end
        stopped = "memory" if counted.oom_kills else "process_limit" if counted.pids_limit_hits else None
    cpu = counted.cpu_seconds if counted is not None and counted.cpu_seconds is not None else None
    return ChildExit(
        stopped=stopped,
        exit_code=None if sig is not None else code,
        signal=sig,
        cpu_seconds=cpu if cpu is not None else usage.ru_utime + usage.ru_stime,
        wall_seconds=wall,
        log_tail=tail,
        idle_seconds=watch.idle if watch.counts_idle else None,
        memory_peak_mb=counted.memory_peak_mb if counted is not None else None,
    )


class _Watch:
    """Checks a running job against its budget at every tick; counts its idle time."""

    def __init__(self, budget: Budget, job: JobCgroup | None) -> None:
        self.budget, self.job = budget, job
        self.idle = 0.0
        self.counts_idle = job is not None and "cpuacct" in job.cg.features
        self._last = time.monotonic()
        self._cpu = 0.0

    def __call__(self) -> StopReason | None:
        if self.job is None:
            return None
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        usage = self.job.usage()
        if usage.pids_limit_hits:
            return "process_limit"
        if usage.oom_kills:
            return "memory"
        if usage.cpu_seconds is None:
            return None
        if self.budget.cpu_seconds is not None and usage.cpu_seconds > self.budget.cpu_seconds:
            return "cpu_time"
        if self.budget.grading_spent is not None and self.budget.grading_spent():
            return "grading_cpu"
        # Running or waiting for a CPU (throttled included) is activity; the rest of the time it slept.
        active = usage.cpu_seconds - self._cpu + self.job.run_delay_seconds()
        self._cpu = usage.cpu_seconds
        self.idle += max(0.0, elapsed - active)
        if self.budget.idle_seconds is not None and self.idle > self.budget.idle_seconds:
            return "idle"
        return None


def _spawn(launch: Launch, log_fd: int, stdin_data: bytes, fds: dict[int, int]) -> int:
    read_end, write_end = os.pipe()
    # Sources first moved above every target number, so that no dup2 below overwrites a source still needed.
    sources: dict[int, int] = {target: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for target, fd in fds.items()}
    if launch.seccomp is not None:
        memfd = os.memfd_create("labgrader-seccomp", os.MFD_CLOEXEC)
        os.write(memfd, launch.seccomp)
        os.lseek(memfd, 0, os.SEEK_SET)
        sources[SECCOMP_FD] = fcntl.fcntl(memfd, fcntl.F_DUPFD_CLOEXEC, 64)
        os.close(memfd)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            *((os.POSIX_SPAWN_DUP2, source, target) for target, source in sorted(sources.items())),
        ]
        pid = os.posix_spawn(launch.argv[0], launch.argv, launch.env, file_actions=actions, setsid=True)
    finally:
        os.close(read_end)
        for source in sources.values():
            os.close(source)
    try:
        os.write(write_end, stdin_data)
    except BrokenPipeError:  # the child is already gone; its exit status tells why
        pass
    finally:
        os.close(write_end)
    return pid


def _wait_exit(
    pid: int, timeout_s: float, on_tick: Callable[[], None] | None, watch: Callable[[], StopReason | None]
) -> StopReason | None:
    """Wait (without reaping) until ``pid`` exits (None) or ``watch`` or the wall-clock limit stop it (the reason)."""
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + timeout_s
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while (remaining := deadline - time.monotonic()) > 0:
            if poller.poll(min(remaining, _TICK_S) * 1000):
                return None
            if (reason := watch()) is not None:
                return reason
            if on_tick is not None:
                on_tick()
        return None if poller.poll(0) else "timeout"
    finally:
        os.close(pidfd)


def _dump_stack(job: JobCgroup, python: list[str]) -> None:
    """Have the job's first Python process (the command line ``python``) print its stack to the log
    (faulthandler, on SIGXCPU) before it is killed, so that the student sees where the code was. Best effort:
    waits at most a second."""
    oldest: tuple[int, int] | None = None
    wanted = [part.encode() for part in python]
    for pid in job.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[: len(wanted)] != wanted:
                    continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                started = int(f.read().rsplit(b")", 1)[1].split()[19])
        except (OSError, ValueError, IndexError):
            continue
        if oldest is None or started < oldest[0]:
            oldest = (started, pid)
    if oldest is None:
        return
    try:
        os.kill(oldest[1], signal.SIGXCPU)
    except OSError:
        return
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and _alive(oldest[1]):
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


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
