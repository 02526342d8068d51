"""Which isolation this host supports, and the command line that launches a sandboxed child.

Layers, outermost first (each is used when the host supports it, see :func:`detect_isolation`):

0. A cgroup per job (:mod:`grader.sandbox.cgroups`): the launch command's first process joins it, so every
   process of the job is counted in it (CPU time, memory with tmpfs pages, processes) and killed with it.
1. ``prlimit`` sets RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE and RLIMIT_CORE; all
   descendants inherit them.
2. ``unshare`` puts the job in a private PID namespace whose first process is a tiny ``sh`` that
   lowers the namespace's ``pid_max`` (Linux >= 6.14) and then runs the rest. When that ``sh`` dies,
   the kernel kills every process left in the namespace, so nothing outlives a job. Lowering
   ``pid_max`` caps the number of processes and threads where no cgroup does: RLIMIT_NPROC is not
   enforced for host root, not even inside a user namespace.
3. ``bwrap`` (bubblewrap) builds an empty filesystem with read-only views of only what Python and
   torch need, a private PID namespace of its own (the student's code sees neither the ``sh`` above nor
   bwrap), a seccomp filter (:mod:`grader.sandbox.seccomp`), and unshares every other namespace (no
   network). The job's folder ``/job`` is a size-limited tmpfs holding read-only copies of its inputs.
   When the grader runs as root, bwrap enters a user namespace made by :func:`sandbox_userns` and the
   student's code runs as :data:`SANDBOX_UID` there, which is the unprivileged host uid
   ``LABGRADER_SANDBOX_UID`` (default 65534), with no capabilities and ``no_new_privs``; otherwise
   bwrap maps the grader's own (unprivileged) uid.
4. The venv's Python, which imports :mod:`grader.sandbox.child` and runs the job. It writes its reply,
   outputs and progress to descriptors the parent opened (see :mod:`grader.sandbox.protocol`).

Everything that can be launched is launched with a minimal environment, never the grader's.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.device import CUDA_ENV
from grader.sandbox import cgroups
from grader.sandbox.protocol import (
    INPUTS_FILE,
    REQUEST_FILE,
    SECCOMP_FD,
    SUBMISSION_FILE,
    USERNS_FD,
    Isolation,
    Limits,
)

#: Folder holding the ``grader`` package source (the parent of ``grader/``).
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
_GRADER_PACKAGE = Path(__file__).resolve().parents[1]
#: Where the grader package's source root appears inside bubblewrap.
_SOURCE_ROOT_IN_BWRAP = "/opt/labgrader"
_JOB_IN_BWRAP = "/job"
#: After pid numbers wrap around, Linux never reuses pids below 300 in any namespace.
_RESERVED_PIDS = 300
_PID_MAX_PROBE = 400
#: Run as PID 1 of the job's namespace: lower pid_max (when $1 > 0), then run "$@" and wait for it.
_PID1_SCRIPT = 'if [ "$1" -gt 0 ]; then echo "$1" > /proc/sys/kernel/pid_max || exit 125; fi; shift; "$@"'
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_PROBE_TIMEOUT_S = 60
#: The student's uid and gid inside the sandbox's user namespace (when the grader runs as root).
SANDBOX_UID = 1000
#: The unprivileged host uid and gid that :data:`SANDBOX_UID` is, unless LABGRADER_SANDBOX_UID says otherwise.
DEFAULT_HOST_UID = 65534


@dataclass(frozen=True)
class HostSupport:
    """What the host supports; probed once per process by :func:`host_support`."""

    prlimit: str
    #: ``unshare`` binary when private PID namespaces work here, else None.
    unshare: str | None
    #: Whether a private PID namespace's pid_max can be lowered (caps processes and threads).
    pid_max: bool
    #: ``bwrap`` binary when a bubblewrap sandbox (inside ``unshare``) can run the venv's Python, else None.
    bwrap: str | None
    #: ``setpriv`` binary: the job gets SIGKILL when the grading process dies (a killed worker leaves nothing).
    setpriv: str | None = None
    #: Host uid the student's code runs as, when the grader is root and could map it (else None: bwrap maps
    #: the grader's own uid).
    sandbox_host_uid: int | None = None
    #: The seccomp program, when this machine's architecture has one.
    seccomp: bytes | None = None


@dataclass(frozen=True)
class Launch:
    """How to start one job's child process."""

    argv: list[str]
    env: dict[str, str]
    #: Descriptors the child must find at these numbers: USERNS_FD -> an open fd to pass on.
    fds: dict[int, int]
    #: Written to a memory file that the child finds at SECCOMP_FD (bubblewrap reads it once).
    seccomp: bytes | None = None
    #: The command line of the job's Python process (the last part of ``argv``).
    python: list[str] = dataclasses.field(default_factory=list)


def job_dir(root: Path) -> Path:
    """The folder the child sees as its job folder (``/job`` under bubblewrap)."""
    return root / "job"


def detect_isolation(limits: Limits) -> Isolation:
    """Describe, truthfully and for students, the isolation :func:`run_task` applies with ``limits``."""
    host = host_support()
    cg = cgroups.host()
    notes = [
        "Your code runs in a separate, short-lived process; the grader only reads the data it returns "
        "(JSON and safetensors), after checking it.",
        _process_note(host, cg, limits),
        _memory_note(cg, limits),
        _time_note(cg, limits),
        f"Files: each file written, printed output included, may be at most {limits.output_mb} MB (RLIMIT_FSIZE).",
    ]
    if cg.problem:
        notes.append(f"Not in force on this grading machine: {cg.problem}.")
    if host.bwrap:
        user = (
            f"your code runs as an unprivileged user (uid {SANDBOX_UID}, host uid {host.sandbox_host_uid}) with "
            "no capabilities"
            if host.sandbox_host_uid is not None
            else "your code runs as the grader's own unprivileged user with no capabilities"
        )
        notes.append(
            "Bubblewrap: new user, PID, network (loopback only), IPC, UTS, cgroup and mount namespaces; "
            f"{user}; a clean set of environment variables; /job, /tmp and /dev/shm are private in-memory "
            f"folders of at most {limits.output_mb} MB each, counted in the memory limit where cgroups are in force."
        )
        if host.seccomp:
            notes.append(
                "System calls a lab never needs (io_uring, bpf, perf_event_open, ptrace, keyrings, mounts, new "
                "namespaces, kernel modules, clock and host settings) fail with EPERM (seccomp)."
            )
        return Isolation(
            method="bubblewrap",
            network_isolated=True,
            filesystem=(
                "Read-only: system libraries (/usr), the Python installation and the grader's code; "
                "read-write: private in-memory /job (its submission and inputs are read-only), /tmp and "
                "/dev/shm; nothing else of the grading machine is visible and data folders holding answers are "
                "masked."
            ),
            limits=limits,
            notes=notes,
            cgroup=sorted(cg.features & {"cpu", "cpuacct", "memory", "pids"}),
            sandbox_uid=host.sandbox_host_uid,
            seccomp=host.seccomp is not None,
        )
    notes.append(
        "Bubblewrap is not available on this grading machine: your code runs with the grader's own user "
        "and privileges and can reach the network and every file the grader can read, including hidden data "
        "folders; it gets a clean set of environment variables, and the total size of the files it writes "
        "to its job folder is not limited."
    )
    return Isolation(
        method="rlimits",
        network_isolated=False,
        filesystem="No filesystem isolation: the child sees the host's files with the grader's permissions "
        "and works in a temporary job folder.",
        limits=limits,
        notes=notes,
        cgroup=sorted(cg.features & {"cpu", "cpuacct", "memory", "pids"}),
    )


def launch(
    root: Path,
    *,
    limits: Limits,
    device: str,
    threads: int | None,
    hidden_paths: Sequence[Path],
    prefix: Sequence[str] = (),
) -> Launch:
    """Command line and environment that run the child on the job prepared under ``root``.

    ``root`` must contain :func:`job_dir` with the submission, request and inputs files in it. ``prefix``
    comes first on the command line (a job's cgroup entry, see :meth:`JobCgroup.enter_prefix`).
    Raises ValueError when a hidden path would hide something the child needs.
    """
    return _launch(host_support(), root, limits, device, threads, hidden_paths, code=None, prefix=prefix)


@functools.cache
def host_support() -> HostSupport:
    """Probe, once per process, which isolation layers work on this host."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise RuntimeError("the sandbox needs the 'prlimit' command (util-linux)")
    unshare = shutil.which("unshare")
    pid_max = False
    if unshare is not None:
        pid_max = _succeeds([*_unshare_prefix(unshare), str(_PID_MAX_PROBE), "true"])
        if not pid_max and not _succeeds([*_unshare_prefix(unshare), "0", "true"]):
            unshare = None
    setpriv = shutil.which("setpriv")
    host = HostSupport(prlimit=prlimit, unshare=unshare, pid_max=pid_max, bwrap=None, setpriv=setpriv)
    bwrap = shutil.which("bwrap")
    if bwrap is None or unshare is None:
        return host
    seccomp = _seccomp_program()
    candidates = []
    if setpriv and sandbox_userns() is not None:
        candidates.append(dataclasses.replace(host, bwrap=bwrap, sandbox_host_uid=_host_uid(), seccomp=seccomp))
    candidates.append(dataclasses.replace(host, bwrap=bwrap, seccomp=seccomp))
    with tempfile.TemporaryDirectory(prefix="labgrader-probe-") as tmp:
        root = Path(tmp)
        job = job_dir(root)
        job.mkdir()
        for name in (SUBMISSION_FILE, REQUEST_FILE, INPUTS_FILE):
            (job / name).touch()
        for candidate in candidates:
            probe = _launch(candidate, root, Limits(), "cpu", 1, (), code="pass")
            if _probe(probe, root):
                return candidate
    return host


def _seccomp_program() -> bytes | None:
    from grader.sandbox.seccomp import filter_program

    try:
        return filter_program()
    except ValueError:  # an architecture without a table: no filter, and the notes say nothing of one
        return None


def _host_uid() -> int:
    value = os.environ.get("LABGRADER_SANDBOX_UID", "")
    uid = int(value) if value.strip().isdigit() else DEFAULT_HOST_UID
    if uid == 0:
        raise ValueError("LABGRADER_SANDBOX_UID must be an unprivileged uid, not 0")
    return uid


@functools.cache
def sandbox_userns() -> int | None:
    """A user namespace for bubblewrap when the grader is root: 0 is host root there (bubblewrap needs it to
    build the sandbox, and gives it up), and :data:`SANDBOX_UID` is the unprivileged host uid the student's code
    runs as. Made once per process (a child parked in it while its maps are written); None where that fails."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return None
    uid = _host_uid()
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([unshare, "--user", "--", "/bin/sh", "-c", "read x"], stdin=read_end)
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    try:
        own = os.stat("/proc/self/ns/user").st_ino
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{child.pid}/ns/user").st_ino == own:
            if time.monotonic() > deadline or child.poll() is not None:
                return None
            time.sleep(0.002)
        mapping = f"0 0 1\n{SANDBOX_UID} {uid} 1\n"
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{child.pid}/{name}", "w", encoding="ascii") as f:
                f.write(mapping)
        return os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(write_end)
        child.wait()


def _probe(probe: Launch, root: Path) -> bool:
    """Whether a launch of ``code="pass"`` exits 0, with its descriptors in place."""
    from grader.sandbox.process import run_child

    try:
        done = run_child(probe, root / "probe.log", b"\n", _PROBE_TIMEOUT_S, 0)
    except OSError:
        return False
    return done.exit_code == 0


def _succeeds(argv: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        done = subprocess.run(argv, env=env or _base_env(None), capture_output=True, timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _process_note(host: HostSupport, cg: cgroups.CgroupHost, limits: Limits) -> str:
    if "pids" in cg.features:
        return (
            f"Processes: at most {limits.processes} processes and threads at once for the whole job (cgroup); "
            "the job stops as soon as it reaches that; all of its processes are killed when it ends."
        )
    if host.pid_max:
        return (
            f"Processes: at most {limits.processes} to {limits.processes + _RESERVED_PIDS} processes and "
            "threads at once (pid_max of a private PID namespace); all of them are killed when the job ends."
        )
    if host.unshare:
        cap = _nproc_note(limits)
        return f"Processes: {cap}; all of them are killed when the job ends (private PID namespace)."
    return (
        f"Processes: {_nproc_note(limits)}; the job's process group is killed when it ends, but processes "
        "that start their own session can survive it."
    )


def _memory_note(cg: cgroups.CgroupHost, limits: Limits) -> str:
    per_process = f"at most {limits.memory_mb} MB of address space per process (RLIMIT_AS; not applied to CUDA jobs)"
    if "memory" in cg.features:
        return (
            f"Memory: at most {limits.memory_mb} MB for all the job's processes and its in-memory folders together "
            f"(cgroup), and {per_process}; GPU memory is not limited by the grader."
        )
    return f"Memory: {per_process}; GPU memory is not limited by the grader."


def _time_note(cg: cgroups.CgroupHost, limits: Limits) -> str:
    if "cpuacct" in cg.features:
        cpu = (
            f"{limits.cpu_seconds:g} s of CPU time for all the job's processes together (cgroup), counted as the "
            "CPU time it receives, so a busy grading machine does not use up your budget"
        )
    else:
        cpu = f"{limits.cpu_seconds:g} s of CPU time per process (RLIMIT_CPU)"
    share = " All the jobs of one grading share its CPUs (a cgroup CPU quota)." if "cpu" in cg.features else ""
    return (
        f"Time: {cpu}; {limits.idle_seconds:g} s in all of neither running nor waiting for a CPU (sleeping or "
        f"blocked); {limits.wall_seconds:g} s wall-clock as a backstop.{share}"
    )


def _nproc_note(limits: Limits) -> str:
    if os.geteuid() == 0:
        return "the number of processes and threads is not limited (RLIMIT_NPROC does not apply to root)"
    return f"at most {limits.processes} processes and threads for the grader's user account (RLIMIT_NPROC)"


def _launch(
    host: HostSupport,
    root: Path,
    limits: Limits,
    device: str,
    threads: int | None,
    hidden_paths: Sequence[Path],
    code: str | None,
    prefix: Sequence[str] = (),
) -> Launch:
    env = _base_env(threads)
    if device == "cuda":
        env.update(CUDA_ENV)
    argv = list(prefix)
    # The parent-death signal survives the exec of prlimit and unshare; unshare --kill-child then takes the
    # whole PID namespace down with it.
    argv += [host.setpriv, "--pdeathsig", "KILL", "--"] if host.setpriv else []
    argv += [host.prlimit, *_rlimit_args(limits, device), "--"]
    if host.unshare:
        pid_max = limits.processes + _RESERVED_PIDS if host.pid_max else 0
        argv += [*_unshare_prefix(host.unshare), str(pid_max)]
    fds: dict[int, int] = {}
    if host.bwrap:
        argv += [host.bwrap, *_bwrap_args(root, env, device, limits, hidden_paths, host)]
        if host.sandbox_host_uid is not None:
            userns = sandbox_userns()
            assert userns is not None  # host_support() chose this only where it was made
            fds[USERNS_FD] = userns
            argv += [host.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups"]
            argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        source_root, job = _SOURCE_ROOT_IN_BWRAP, _JOB_IN_BWRAP
    else:
        source_root, job = str(_SOURCE_ROOT), str(job_dir(root))
    if code is None:
        code = (
            f"import sys; sys.path.insert(0, {source_root!r}); from grader.sandbox.priority import follow_nice; "
            f"follow_nice(); from grader.sandbox.child import main; main({job!r})"
        )
    # The host path of the job's folder ends the command line of every process of the job (forks keep it),
    # so that leftovers could be traced to their job.
    python = [sys.executable, "-s", "-P", "-B", "-X", "faulthandler", "-c", code, str(root)]
    return Launch(argv=argv + python, env=env, fds=fds, seccomp=host.seccomp if host.bwrap else None, python=python)


def _unshare_prefix(unshare: str) -> list[str]:
    """``unshare`` into a new PID namespace running :data:`_PID1_SCRIPT`; append pid_max and the command."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    pidns = ["--pid", "--fork", "--kill-child", "--mount-proc"]
    return [unshare, *user, *pidns, "--", "/bin/sh", "-c", _PID1_SCRIPT, "sh"]


def _rlimit_args(limits: Limits, device: str) -> list[str]:
    mib = 1024 * 1024
    cpu = max(1, round(limits.cpu_seconds))
    args = [
        f"--cpu={cpu}:{cpu + 2}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.output_mb * mib}",
        "--core=0",
    ]
    if device != "cuda":  # CUDA reserves far more virtual address space than any sane RLIMIT_AS
        args.append(f"--as={limits.memory_mb * mib}")
    return args


def _base_env(threads: int | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def _bwrap_args(
    root: Path, env: dict[str, str], device: str, limits: Limits, hidden_paths: Sequence[Path], host: HostSupport
) -> list[str]:
    job = job_dir(root)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/tmp:/usr/sbin/nologin\nstudent:x:{SANDBOX_UID}:{SANDBOX_UID}::/tmp:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nstudent:x:{SANDBOX_UID}:\n")
    tmpfs_size = str(limits.output_mb * 1024 * 1024)
    python_dirs = sorted({sys.base_prefix, sys.prefix, sys.base_exec_prefix, sys.exec_prefix})
    needed = ["/usr", *python_dirs, str(_GRADER_PACKAGE)]
    if host.sandbox_host_uid is not None:
        # The prepared user namespace; bwrap keeps only the capabilities that setpriv needs to become the student
        # (and setpriv clears them, the bounding set included).
        args = ["--userns", str(USERNS_FD), "--cap-drop", "ALL"]
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        args = ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session", "--clearenv"]
    if host.seccomp is not None:
        args += ["--seccomp", str(SECCOMP_FD)]
    for name, value in env.items():
        args += ["--setenv", name, value]
    args += ["--ro-bind", "/usr", "/usr"]
    # The private /tmp comes before the Python binds: a checkout or venv that lives under /tmp stays visible.
    args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", "/tmp"]
    for link in _ROOT_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--ro-bind", str(etc / "passwd"), "/etc/passwd", "--ro-bind", str(etc / "group"), "/etc/group"]
    # bubblewrap makes the missing parents of a bind target mode 0700: the student's uid could not pass them.
    parents = sorted(
        {str(a) for d in (*python_dirs, f"{_SOURCE_ROOT_IN_BWRAP}/grader") for a in Path(d).parents} - {"/"}
    )
    for parent in parents:
        if parent not in ("/tmp", "/usr", *_ROOT_LINKS) and not parent.startswith("/usr/"):
            args += ["--perms", "0755", "--dir", parent]
    for path in python_dirs:
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", str(_GRADER_PACKAGE), f"{_SOURCE_ROOT_IN_BWRAP}/grader"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if device == "cuda":
        for node in sorted(glob.glob("/dev/nvidia*")):
            args += ["--dev-bind", node, node]
    args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", "/dev/shm"]
    args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", _JOB_IN_BWRAP]
    for name in (SUBMISSION_FILE, REQUEST_FILE, INPUTS_FILE):
        if (job / name).exists():  # a trusted job has no submission
            args += ["--ro-bind", str(job / name), f"{_JOB_IN_BWRAP}/{name}"]
    args += _mask_args(hidden_paths, needed)
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", _JOB_IN_BWRAP]
    return args


def _mask_args(hidden_paths: Sequence[Path], needed: Sequence[str]) -> list[str]:
    """Hide each existing path: folders behind an empty read-only tmpfs, files behind /dev/null."""
    args: list[str] = []
    for hidden in hidden_paths:
        path = Path(hidden).resolve()
        for keep in needed:
            if Path(keep).is_relative_to(path):
                raise ValueError(f"hidden path {hidden} would hide {keep}, which the sandbox needs")
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args
