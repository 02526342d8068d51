"""Which isolation this host supports, and the command line that launches a sandboxed child.

Layers, outermost first (each is used when the host supports it, see :func:`detect_isolation`):

1. ``prlimit`` sets RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE and RLIMIT_CORE; all
   descendants inherit them.
2. ``unshare`` puts the job in a private PID namespace whose first process is a tiny ``sh`` that
   lowers the namespace's ``pid_max`` (Linux >= 6.14) and then runs the rest. When that ``sh`` dies,
   the kernel kills every process left in the namespace, so nothing outlives a job. Lowering
   ``pid_max`` is what caps the number of processes and threads: RLIMIT_NPROC is not enforced for
   host root, not even inside a user namespace.
3. ``bwrap`` (bubblewrap) builds an empty filesystem with read-only views of only what Python and
   torch need, drops all capabilities and unshares every namespace but the PID one (no network).
   It must not make its own PID namespace: its init would wait for every leftover process, while
   without one bwrap exits with the student's process and layer 2 then kills the leftovers.
   Bubblewrap is only used on top of layer 2.
4. The venv's Python, which imports :mod:`grader.sandbox.child` and runs the job.

Everything that can be launched is launched with a minimal environment, never the grader's.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.device import CUDA_ENV
from grader.sandbox.protocol import INPUTS_FILE, REQUEST_FILE, SUBMISSION_FILE, Isolation, Limits

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


@dataclass(frozen=True)
class Launch:
    """How to start one job's child process."""

    argv: list[str]
    env: dict[str, str]


def job_dir(root: Path) -> Path:
    """The folder the child sees as its job folder (``/job`` under bubblewrap)."""
    return root / "job"


def detect_isolation(limits: Limits) -> Isolation:
    """Describe, truthfully and for students, the isolation :func:`run_task` applies with ``limits``."""
    host = host_support()
    notes = [
        "Your code runs in a separate, short-lived process; the grader only reads the data it returns "
        "(JSON and safetensors), after checking it.",
        _process_note(host, limits),
        f"Memory: at most {limits.memory_mb} MB of address space per process (RLIMIT_AS); not applied to "
        "CUDA jobs, and GPU memory is not limited by the grader.",
        f"Time: {limits.wall_seconds:g} s wall-clock for the whole job and {limits.cpu_seconds:g} s of CPU "
        "time per process (RLIMIT_CPU).",
        f"Files: each file written, printed output included, may be at most {limits.output_mb} MB (RLIMIT_FSIZE).",
    ]
    if host.bwrap:
        notes.append(
            "Bubblewrap: new user, network (loopback only), IPC, UTS, cgroup and mount namespaces; all "
            "capabilities dropped; a clean set of environment variables; /tmp and /dev/shm are private "
            f"and hold at most {limits.output_mb} MB each; the total size of files written to /job is not "
            "limited."
        )
        return Isolation(
            method="bubblewrap",
            network_isolated=True,
            filesystem=(
                "Read-only: system libraries (/usr), the Python installation and the grader's code; "
                "read-write: /job (its submission and inputs are read-only) and private /tmp and /dev/shm; "
                "nothing else of the grading machine is visible and data folders holding answers are masked."
            ),
            limits=limits,
            notes=notes,
        )
    notes.append(
        "Bubblewrap is not available on this grading machine: your code runs with the grader's own user "
        "and privileges and can reach the network and every file the grader can read, including hidden data "
        "folders; it gets a clean set of environment variables."
    )
    return Isolation(
        method="rlimits",
        network_isolated=False,
        filesystem="No filesystem isolation: the child sees the host's files with the grader's permissions "
        "and works in a temporary job folder.",
        limits=limits,
        notes=notes,
    )


def launch(root: Path, *, limits: Limits, device: str, threads: int | None, hidden_paths: Sequence[Path]) -> Launch:
    """Command line and environment that run the child on the job prepared under ``root``.

    ``root`` must contain :func:`job_dir` with the submission, request and inputs files in it.
    Raises ValueError when a hidden path would hide something the child needs.
    """
    return _launch(host_support(), root, limits, device, threads, hidden_paths, code=None)


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
    with_bwrap = HostSupport(prlimit=prlimit, unshare=unshare, pid_max=pid_max, bwrap=bwrap, setpriv=setpriv)
    with tempfile.TemporaryDirectory(prefix="labgrader-probe-") as tmp:
        root = Path(tmp)
        job = job_dir(root)
        job.mkdir()
        for name in (SUBMISSION_FILE, REQUEST_FILE, INPUTS_FILE):
            (job / name).touch()
        probe = _launch(with_bwrap, root, Limits(), "cpu", 1, (), code="pass")
        works = _succeeds(probe.argv, env=probe.env)
    return with_bwrap if works else host


def _succeeds(argv: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        done = subprocess.run(argv, env=env or _base_env(None), capture_output=True, timeout=_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _process_note(host: HostSupport, limits: Limits) -> str:
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
) -> Launch:
    env = _base_env(threads)
    if device == "cuda":
        env.update(CUDA_ENV)
    # The parent-death signal survives the exec of prlimit and unshare; unshare --kill-child then takes the
    # whole PID namespace down with it.
    argv = [host.setpriv, "--pdeathsig", "KILL", "--"] if host.setpriv else []
    argv += [host.prlimit, *_rlimit_args(limits, device), "--"]
    if host.unshare:
        pid_max = limits.processes + _RESERVED_PIDS if host.pid_max else 0
        argv += [*_unshare_prefix(host.unshare), str(pid_max)]
    if host.bwrap:
        argv += [host.bwrap, *_bwrap_args(root, env, device, limits, hidden_paths)]
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
    argv += [sys.executable, "-s", "-P", "-B", "-X", "faulthandler", "-c", code, str(root)]
    return Launch(argv=argv, env=env)


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
    root: Path, env: dict[str, str], device: str, limits: Limits, hidden_paths: Sequence[Path]
) -> list[str]:
    job = job_dir(root)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/tmp:/usr/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\n")
    tmpfs_size = str(limits.output_mb * 1024 * 1024)
    python_dirs = sorted({sys.base_prefix, sys.prefix, sys.base_exec_prefix, sys.exec_prefix})
    needed = ["/usr", *python_dirs, str(_GRADER_PACKAGE)]
    args = ["--unshare-user", "--disable-userns", "--unshare-ipc", "--unshare-net", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
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
    for path in python_dirs:
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", str(_GRADER_PACKAGE), f"{_SOURCE_ROOT_IN_BWRAP}/grader"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if device == "cuda":
        for node in sorted(glob.glob("/dev/nvidia*")):
            args += ["--dev-bind", node, node]
    args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", "/dev/shm"]
    args += ["--bind", str(job), _JOB_IN_BWRAP]
    for name in (SUBMISSION_FILE, REQUEST_FILE, INPUTS_FILE):
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
