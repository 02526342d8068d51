"""A cgroup for every sandboxed job: its processes, memory and CPU counted and capped together (trusted side).

Layout, in every hierarchy that holds a controller we use (cgroup v1) or in the one hierarchy (cgroup v2), below
the cgroup this process was started in::

    <own cgroup>/labgrader/grading-<pid>-<n>/            CPU quota of the whole grading (its CPU share)
    <own cgroup>/labgrader/grading-<pid>-<n>/job-<m>/    one sandboxed job: memory, pids; CPU time is read here

What a job gets:

- ``pids.max``: processes and threads of the job at once; a fork bomb meets it instead of the host's pid table.
- ``memory.limit_in_bytes`` / ``memory.max``: every page of every process of the job, and the pages of its
  private tmpfs mounts (/job, /tmp, /dev/shm: tmpfs pages are charged to the cgroup of the process that writes
  them), with swap off. Unlike RLIMIT_AS it is summed over processes.
- the grading's ``cpu.cfs_quota_us`` / ``cpu.max``: all the grading's jobs together run on at most its CPU share,
  whatever their number of processes, nice values or scheduler autogroups (a process can leave its autogroup and
  lower its nice back to 0, but cannot leave its cgroup: that needs privileges the sandbox drops).
- the job's own CPU time (``cpuacct.usage`` / ``cpu.stat``), which the runner counts against the task's budget,
  and its threads (``tasks`` / ``cgroup.threads``), whose run-queue delays tell a job that waits for a CPU from
  one that sleeps.

A job's processes enter its cgroup before anything of the job runs: the launch command starts with
:data:`ENTER_SCRIPT`, a ``sh`` that writes its own pid into each ``cgroup.procs`` and then execs the rest.
At the end the whole cgroup is killed (``cgroup.kill`` on v2; on v1 frozen when the freezer is mounted, every
process SIGKILLed until none is left) and removed. Groups that a killed worker left behind are removed by the next
grading of the same host.

cgroup v2 needs a delegated subtree: the controllers enabled in our cgroup's parent, and our cgroup free of
processes once it gives controllers to children (the "no internal processes" rule). Where our cgroup holds
processes, they are moved into a leaf ``<own cgroup>/supervisor`` first, as container entrypoints do (see
docs/deploy.md for docker-compose). Anything that cannot be set up leaves that limit out, and :func:`host` says
which held.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Controllers we use, by feature.
FEATURES = ("cpu", "cpuacct", "memory", "pids")
#: First argument: how many cgroup.procs files follow; the command comes after them.
ENTER_SCRIPT = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 126; shift; n=$((n-1)); done; exec "$@"'
_BASE = "labgrader"
_KILL_TIMEOUT_S = 10.0
_V1_PERIOD_US = 100_000
_counter = itertools.count()
_lock = threading.Lock()


@dataclass(frozen=True)
class CgroupHost:
    """Where jobs' cgroups can be made on this host; empty ``dirs`` when nowhere."""

    version: int | None
    #: v1: controller -> our base folder in its hierarchy; v2: "" -> our base folder.
    dirs: dict[str, Path] = field(default_factory=dict)
    #: Features that work: "cpu" (quota), "cpuacct" (CPU time), "memory", "pids", "freezer", "kill".
    features: frozenset[str] = frozenset()
    #: Why some features are missing (for the isolation notes); empty when all work.
    problem: str = ""

    def __bool__(self) -> bool:
        return bool(self.features)


@functools.cache
def host() -> CgroupHost:
    """Probe once per process where jobs' cgroups can go."""
    try:
        v1 = _mounts("cgroup")
        v2 = _mounts("cgroup2")
        own = _own_paths()
    except OSError as error:
        return CgroupHost(None, problem=f"cgroups could not be read ({error.strerror})")
    if any(c in v1 for c in FEATURES):
        return _probe_v1(v1, own)
    if v2:
        return _probe_v2(next(iter(v2.values())), own.get("", "/"))
    return CgroupHost(None, problem="no cgroup file system is mounted")


def _mounts(fstype: str) -> dict[str, tuple[Path, str]]:
    """controller (or "" for v2) -> (mount point, root of the mount) from /proc/self/mountinfo."""
    found: dict[str, tuple[Path, str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3 or rfields[0] != fstype:
                continue
            point, root = Path(fields[4].replace("\\040", " ")), fields[3]
            if fstype == "cgroup2":
                found.setdefault("", (point, root))
                continue
            for option in rfields[2].split(","):
                if option in (*FEATURES, "freezer"):
                    found.setdefault(option, (point, root))
    return found


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _inside(point: Path, root: str, path: str) -> Path:
    """The folder of cgroup ``path`` under a mount of the hierarchy's ``root`` (containers mount a subtree)."""
    relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return (point / relative).resolve() if relative != "." else point


def _probe_v1(mounts: dict[str, tuple[Path, str]], own: dict[str, str]) -> CgroupHost:
    dirs: dict[str, Path] = {}
    problems = []
    for controller in (*FEATURES, "freezer"):
        if controller not in mounts:
            if controller != "freezer":
                problems.append(f"the {controller} controller is not mounted")
            continue
        point, root = mounts[controller]
        base = _inside(point, root, own.get(controller, "/")) / _BASE
        try:
            base.mkdir(exist_ok=True)
            if controller == "memory":
                with contextlib.suppress(OSError):  # always on in new kernels, where the file is read-only
                    (base / "memory.use_hierarchy").write_text("1")
        except OSError as error:
            problems.append(f"{controller}: {base} cannot be created ({error.strerror})")
            continue
        dirs[controller] = base
    features = set(dirs)
    if "freezer" in features:
        features.add("kill")
    return CgroupHost(1, dirs, frozenset(features), "; ".join(problems))


def _probe_v2(mount: tuple[Path, str], own_path: str) -> CgroupHost:
    own = _inside(*mount, own_path)
    wanted = ("cpu", "memory", "pids")
    try:
        _writable(mount[0])
        available = (own / "cgroup.controllers").read_text().split()
        missing = [c for c in wanted if c not in available]
        if missing:
            return CgroupHost(2, problem=f"cgroup v2 does not delegate {', '.join(missing)} to {own}")
        base = own / _BASE
        _enable_v2(own, wanted)
        base.mkdir(exist_ok=True)
        _enable_v2(base, wanted)
    except OSError as error:
        return CgroupHost(2, problem=f"cgroup v2 controllers cannot be enabled under {own} ({error.strerror})")
    # cpu.stat's usage_usec and cgroup.kill are in the core of v2: accounting and kill need no controller.
    return CgroupHost(2, {"": base}, frozenset({"cpu", "cpuacct", "memory", "pids", "kill"}))


def _writable(point: Path) -> None:
    """Docker mounts a container's own cgroup namespace read-only; a root worker given CAP_SYS_ADMIN (as the
    compose file does for the sandbox) may remount that view read-write. Nothing happens where it is writable."""
    if os.access(point, os.W_OK) or os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        subprocess.run(["mount", "-o", "remount,rw", str(point)], capture_output=True, timeout=10, check=False)


def _enable_v2(cgroup: Path, controllers: tuple[str, ...]) -> None:
    """Give ``controllers`` to the children of ``cgroup``, first moving its own processes into a leaf."""
    line = " ".join(f"+{c}" for c in controllers)
    try:
        (cgroup / "cgroup.subtree_control").write_text(line)
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise
        leaf = cgroup / "supervisor"
        leaf.mkdir(exist_ok=True)
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, OSError):
                (leaf / "cgroup.procs").write_text(pid)
        (cgroup / "cgroup.subtree_control").write_text(line)


class _Group:
    """One cgroup: a folder per hierarchy (v1) or one folder (v2)."""

    def __init__(self, cg: CgroupHost, dirs: dict[str, Path]) -> None:
        self.cg, self.dirs = cg, dirs

    def _dir(self, controller: str) -> Path | None:
        return self.dirs.get("" if self.cg.version == 2 else controller)

    def child(self, name: str, parent_of_jobs: bool = False) -> _Group:
        """A new group below this one; on v2, ``parent_of_jobs`` gives it the controllers its jobs need."""
        dirs = {key: path / name for key, path in self.dirs.items()}
        for path in dirs.values():
            path.mkdir()
        if parent_of_jobs and self.cg.version == 2:
            with contextlib.suppress(OSError):
                (dirs[""] / "cgroup.subtree_control").write_text("+cpu +memory +pids")
        return _Group(self.cg, dirs)

    def write(self, controller: str, name: str, value: str) -> bool:
        folder = self._dir(controller)
        if folder is None:
            return False
        try:
            (folder / name).write_text(value)
        except OSError:
            return False
        return True

    def read(self, controller: str, name: str) -> str | None:
        folder = self._dir(controller)
        if folder is None:
            return None
        try:
            return (folder / name).read_text()
        except OSError:
            return None

    def cpu_seconds(self) -> float | None:
        """CPU time (user and system) of every process that was ever in the group; None without accounting."""
        if self.cg.version == 2:
            for line in (self.read("", "cpu.stat") or "").splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            return None
        text = self.read("cpuacct", "cpuacct.usage")
        return int(text) / 1e9 if text else None

    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return found

    def threads(self) -> list[int]:
        name = "cgroup.threads" if self.cg.version == 2 else "tasks"
        key = "" if self.cg.version == 2 else next(iter(self.dirs), "")
        try:
            return [int(t) for t in (self.dirs[key] / name).read_text().split()]
        except (OSError, KeyError):
            return []

    def kill(self) -> None:
        """SIGKILL every process in the group and wait until none is left (bounded)."""
        if self.cg.version == 2 and self.write("", "cgroup.kill", "1"):
            _wait_empty(self)
            return
        frozen = self.write("freezer", "freezer.state", "FROZEN")
        deadline = time.monotonic() + _KILL_TIMEOUT_S
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if frozen:  # killed processes die only once thawed; forks are impossible while frozen
                self.write("freezer", "freezer.state", "THAWED")
                frozen = False
                time.sleep(0.005)
                frozen = self.write("freezer", "freezer.state", "FROZEN")
            else:
                time.sleep(0.005)
        if frozen:
            self.write("freezer", "freezer.state", "THAWED")
        _wait_empty(self)

    def remove(self) -> None:
        """Kill what is left and remove the folders (children first; never raises)."""
        for path in self.dirs.values():
            if not path.exists():
                continue
            for sub in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
                _Group(self.cg, {k: v / sub.name for k, v in self.dirs.items()}).remove()
        self.kill()
        for path in self.dirs.values():
            with contextlib.suppress(FileNotFoundError):
                _rmdir(path)


def _wait_empty(group: _Group) -> None:
    deadline = time.monotonic() + _KILL_TIMEOUT_S
    while group.pids() and time.monotonic() < deadline:
        time.sleep(0.005)


def _rmdir(path: Path) -> None:
    """rmdir, retried for a moment: a cgroup stays busy until its last killed process is reaped."""
    for _ in range(200):
        try:
            path.rmdir()
            return
        except OSError as error:
            if error.errno == errno.ENOENT:
                return
            if error.errno != errno.EBUSY:
                return
            time.sleep(0.01)


@dataclass
class JobUsage:
    """What the kernel counted for a job."""

    cpu_seconds: float | None = None
    memory_peak_mb: float | None = None
    oom_kills: int = 0
    pids_limit_hits: int = 0


class JobCgroup:
    """The cgroup of one sandboxed job; :meth:`close` kills and removes it."""

    def __init__(self, group: _Group, memory_mb: int, processes: int) -> None:
        self._group = group
        self.cg = group.cg
        self.held: list[str] = []
        mib = 1024 * 1024
        if self.cg.version == 2:
            if group.write("memory", "memory.max", str(memory_mb * mib)):
                group.write("memory", "memory.swap.max", "0")
                self.held.append("memory")
            if group.write("pids", "pids.max", str(processes)):
                self.held.append("pids")
        else:
            if group.write("memory", "memory.limit_in_bytes", str(memory_mb * mib)):
                group.write("memory", "memory.memsw.limit_in_bytes", str(memory_mb * mib))
                group.write("memory", "memory.swappiness", "0")
                self.held.append("memory")
            if group.write("pids", "pids.max", str(processes)):
                self.held.append("pids")
        self._delays: dict[int, int] = {}

    def enter_prefix(self) -> list[str]:
        """Put this in front of the job's command line: its first process joins the cgroup, then execs it."""
        files = [str(p) for p in self._group.procs_files()]
        return ["/bin/sh", "-c", ENTER_SCRIPT, "sh", str(len(files)), *files]

    def cpu_seconds(self) -> float | None:
        """CPU time of every process the job ever had (user and system)."""
        return self._group.cpu_seconds()

    def run_delay_seconds(self) -> float:
        """Time the job's threads spent runnable but not running (waiting for a CPU, throttled) since the last
        call; threads that ended in between take theirs with them."""
        total = 0
        seen: dict[int, int] = {}
        for tid in self._group.threads():
            try:
                with open(f"/proc/{tid}/schedstat", encoding="ascii") as f:
                    delay = int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
            seen[tid] = delay
            total += delay - self._delays.get(tid, 0)
        self._delays = seen
        return max(0, total) / 1e9

    def usage(self) -> JobUsage:
        usage = JobUsage(cpu_seconds=self.cpu_seconds())
        g = self._group
        if self.cg.version == 2:
            peak = g.read("memory", "memory.peak")
            events = _keyed(g.read("memory", "memory.events"))
            usage.oom_kills = events.get("oom_kill", 0)
        else:
            peak = g.read("memory", "memory.max_usage_in_bytes")
            usage.oom_kills = _keyed(g.read("memory", "memory.oom_control")).get("oom_kill", 0)
        usage.memory_peak_mb = int(peak) / 1024 / 1024 if peak and peak.strip().isdigit() else None
        usage.pids_limit_hits = _keyed(g.read("pids", "pids.events")).get("max", 0)
        return usage

    def pids(self) -> set[int]:
        return self._group.pids()

    def kill(self) -> None:
        self._group.kill()

    def close(self) -> None:
        self._group.remove()


def _keyed(text: str | None) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return values


class GradingCgroup:
    """The cgroup of one grading: its jobs share ``cpus`` CPUs (a quota); each job is a child cgroup."""

    def __init__(self, cpus: float | None, cpu_budget: float | None = None) -> None:
        #: CPU seconds all the grading's jobs may use together (None: no such budget).
        self.cpu_budget = cpu_budget
        self.cg = host()
        with _lock:
            name = f"grading-{os.getpid()}-{next(_counter)}"
        _remove_stale(self.cg)
        self._group = _Group(self.cg, dict(self.cg.dirs)).child(name, parent_of_jobs=True)
        self.cpus = cpus
        self.quota = False
        if cpus is not None and cpus > 0:
            quota = round(cpus * _V1_PERIOD_US)
            if self.cg.version == 2:
                self.quota = self._group.write("cpu", "cpu.max", f"{quota} {_V1_PERIOD_US}")
            else:
                self._group.write("cpu", "cpu.cfs_period_us", str(_V1_PERIOD_US))
                self.quota = self._group.write("cpu", "cpu.cfs_quota_us", str(quota))
        self._jobs = itertools.count()

    def cpu_seconds(self) -> float | None:
        """CPU time of every job of the grading so far."""
        return self._group.cpu_seconds()

    def over_budget(self) -> bool:
        """Whether the grading's jobs together used up its CPU budget."""
        if self.cpu_budget is None:
            return False
        used = self.cpu_seconds()
        return used is not None and used > self.cpu_budget

    def job(self, memory_mb: int, processes: int) -> JobCgroup:
        with _lock:
            name = f"job-{next(self._jobs)}"
        return JobCgroup(self._group.child(name), memory_mb, processes)

    def close(self) -> None:
        self._group.remove()


@contextlib.contextmanager
def grading_cgroup(cpus: float | None, cpu_budget: float | None = None) -> Iterator[GradingCgroup | None]:
    """A grading's cgroup for its jobs, or None where this host has no usable cgroups."""
    if not host():
        yield None
        return
    try:
        grading = GradingCgroup(cpus, cpu_budget)
    except OSError:
        yield None
        return
    try:
        yield grading
    finally:
        grading.close()


def _remove_stale(cg: CgroupHost) -> None:
    """Remove the gradings' groups of processes that no longer exist (a killed worker's leftovers)."""
    for path in cg.dirs.values():
        try:
            names = [p.name for p in path.iterdir() if p.is_dir() and p.name.startswith("grading-")]
        except OSError:
            continue
        for name in names:
            owner = name.split("-")[1]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                _Group(cg, {k: v / name for k, v in cg.dirs.items()}).remove()
