"""The seccomp filter: its numbers against the kernel headers, its logic on both architectures (with a small
classic-BPF interpreter), and its effect on real processes started by ``bwrap --seccomp FD``."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from grader.sandbox.seccomp import (
    CLONE_NEW_FLAGS,
    DENIED,
    RESTRICTED,
    SYSCALL_NUMBERS,
    UnsupportedArchitectureError,
    filter_fd,
    filter_program,
    syscall_numbers,
)

ARCH = platform.machine()
BWRAP = shutil.which("bwrap")
requires_filter = pytest.mark.skipif(
    BWRAP is None or ARCH not in ("x86_64", "aarch64"), reason="needs bwrap on x86_64 or aarch64"
)
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "i386": 0x40000003}
KILL_PROCESS, ALLOW, EPERM, ENOSYS = 0x80000000, 0x7FFF0000, 0x00050001, 0x00050026
SIGCHLD, CLONE_NEWUSER, PER_LINUX32 = 17, 0x10000000, 0x0008
#: Flags glibc's fork() and pthread_create() pass to clone.
FORK_FLAGS = 0x01200000 | SIGCHLD
THREAD_FLAGS = 0x003D0F00
HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/asm-generic/unistd.h",),
}


def run_bpf(program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """What ``program`` returns for a call; only the instructions the filter uses are known."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    instructions = list(struct.iter_unpack("<HBBI", program))
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]
        pc += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            (acc,) = struct.unpack_from("<I", data, k)
        elif code == 0x15:  # BPF_JMP | BPF_JEQ | BPF_K
            pc += jt if acc == k else jf
        elif code == 0x45:  # BPF_JMP | BPF_JSET | BPF_K
            pc += jt if acc & k else jf
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def test_policy_lists():
    expected = {
        "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key", "bpf",
        "perf_event_open", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "mount", "umount2",
        "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
        "swapoff", "unshare", "setns", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "acct", "quotactl",
        "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
        "iopl", "ioperm", "fanotify_init", "lookup_dcookie", "vhangup",
    }  # fmt: skip
    assert set(DENIED) == expected | {"open_tree_attr"}
    assert set(RESTRICTED) == {"clone", "clone3", "personality"}
    assert set(SYSCALL_NUMBERS) == set(DENIED) | set(RESTRICTED)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_program_format(arch):
    program = filter_program(arch)
    assert len(program) % 8 == 0 and 0 < len(program) // 8 < 4096
    assert program != filter_program("aarch64" if arch == "x86_64" else "x86_64")


@pytest.mark.parametrize("arch", ["i686", "riscv64", "armv7l", "ppc64le"])
def test_other_architectures_are_refused(arch):
    with pytest.raises(UnsupportedArchitectureError, match=arch):
        filter_program(arch)
    assert issubclass(UnsupportedArchitectureError, ValueError)  # what the caller catches to go without a filter


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_numbers_match_kernel_headers(arch):
    header = next((Path(path) for path in HEADERS[arch] if Path(path).exists()), None)
    if header is None:
        pytest.skip(f"no kernel header for {arch} here")
    known = {name: int(nr) for name, nr in re.findall(r"^#define __NR_(\w+)\s+(\d+)\s*$", header.read_text(), re.M)}
    highest = max(nr for name, nr in known.items() if name != "syscalls")
    for name, nr in syscall_numbers(arch).items():
        if name in known:
            assert nr == known[name], f"{name} is {known[name]} in {header}"
        else:  # only calls newer than the installed headers may be missing from them
            assert nr > highest, f"{name} is not in {header}"
    assert ("iopl" in syscall_numbers(arch)) == ("iopl" in known)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_program_logic(arch):
    program, audit = filter_program(arch), AUDIT_ARCH[arch]
    numbers = syscall_numbers(arch)

    def verdict(name_or_nr: str | int, arg0: int = 0, audit: int = audit) -> int:
        nr = numbers[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
        return run_bpf(program, audit, nr, arg0)

    for name in DENIED:
        if name in numbers:
            assert verdict(name) == verdict(name, 0xFFFFFFFF) == EPERM, name
    assert verdict("clone3") == ENOSYS
    for flag in range(32):
        expected = EPERM if (1 << flag) & CLONE_NEW_FLAGS else ALLOW
        assert verdict("clone", FORK_FLAGS | (1 << flag)) == expected, hex(1 << flag)
    assert verdict("clone", FORK_FLAGS) == verdict("clone", THREAD_FLAGS) == ALLOW
    assert verdict("personality", 0) == verdict("personality", 0xFFFFFFFF) == ALLOW
    assert verdict("personality", PER_LINUX32) == verdict("personality", 0x0400000) == EPERM
    filtered = set(numbers.values())
    assert all(verdict(nr) == ALLOW for nr in range(600) if nr not in filtered)
    for other in set(AUDIT_ARCH.values()) - {audit}:
        assert verdict(0, audit=other) == verdict(numbers["bpf"], audit=other) == KILL_PROCESS
    x32 = ENOSYS if arch == "x86_64" else ALLOW
    assert verdict(0x40000000 | 39) == x32  # x32's getpid


def bwrap(code: str, *args: str, seccomp: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in bubblewrap (with ``args`` before the command), under the filter if ``seccomp``."""
    fds = [filter_fd()] if seccomp else []
    option = ["--seccomp", str(fds[0])] if seccomp else []
    argv = [BWRAP, "--dev-bind", "/", "/", "--new-session", "--die-with-parent", *args, *option, "--"]
    try:
        return subprocess.run(
            [*argv, sys.executable, "-c", code], pass_fds=fds, capture_output=True, text=True, timeout=timeout
        )
    finally:
        for fd in fds:
            os.close(fd)


#: Runs each probe in a forked child and prints {name: "ok", an errno name or a signal name} as JSON.
PROBE_RUNNER = r"""
import ctypes, errno, json, mmap, os, resource, signal, traceback

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def call(nr, *args):
    parent = os.getpid()
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(arg) for arg in args))
    if os.getpid() != parent:  # the child of a raw clone
        os._exit(0)
    if result > 0 and nr == CLONE:
        os.waitpid(result, 0)
    return ctypes.get_errno() if result == -1 else 0


def int80_getpid():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3")  # mov eax, 20 (i386 getpid); int 0x80; ret
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return 0 if ctypes.CFUNCTYPE(ctypes.c_int)(address)() == os.getpid() else errno.EIO


def probe(args):
    pid = os.fork()
    if pid == 0:
        try:
            code = int80_getpid() if args == "int80" else call(*args)
        except BaseException:
            traceback.print_exc()
            code = 255
        os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code < 0:
        return signal.Signals(-code).name
    return "ok" if code == 0 else "error" if code == 255 else errno.errorcode[code]


CLONE, PROBES = SPEC
print(json.dumps({name: probe(args) for name, args in PROBES.items()}))
"""


def probe_results(probes: dict[str, object], *, seccomp: bool) -> dict[str, str]:
    spec = json.dumps([syscall_numbers()["clone"], probes])
    done = bwrap(f"SPEC = {spec}\n{PROBE_RUNNER}", seccomp=seccomp)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def targeted_probes() -> dict[str, object]:
    """Calls as an attacker would make them, with arguments that are harmless without the filter."""
    nr = syscall_numbers()
    probes: dict[str, object] = {
        "io_uring_setup": [nr["io_uring_setup"], 1, 0],
        "keyctl": [nr["keyctl"], 0, -1, 0],  # KEYCTL_GET_KEYRING_ID of the thread keyring
        "bpf": [nr["bpf"], 9999, 0, 0],
        "perf_event_open": [nr["perf_event_open"], 0, 0, -1, -1, 0],
        "ptrace(PTRACE_TRACEME)": [nr["ptrace"], 0, 0, 0, 0],
        "unshare(CLONE_NEWUSER)": [nr["unshare"], CLONE_NEWUSER],
        "mount": [nr["mount"], 0, 0, 0, 0, 0],  # NULL source and target
        "clone(CLONE_NEWUSER)": [nr["clone"], CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0],
        "clone3": [nr["clone3"], 0, 0],
        "personality(PER_LINUX32)": [nr["personality"], PER_LINUX32],
    }
    if ARCH == "x86_64":
        probes["int 0x80"] = "int80"
    return probes


def allowed_probes() -> dict[str, object]:
    nr = syscall_numbers()
    return {
        "clone(SIGCHLD)": [nr["clone"], SIGCHLD, 0, 0, 0, 0],
        "personality(query)": [nr["personality"], 0xFFFFFFFF],
        "personality(PER_LINUX)": [nr["personality"], 0],
    }


@requires_filter
def test_denied_calls_fail_with_eperm():
    # Every denied call, with arguments (-1: bad fd, bad flags, kernel address) the kernel would refuse anyway.
    everything = {name: [nr, -1, -1, -1, -1, -1, -1] for name, nr in syscall_numbers().items() if name in DENIED}
    expected = dict.fromkeys(everything, "EPERM") | dict.fromkeys(targeted_probes(), "EPERM")
    expected |= dict.fromkeys(allowed_probes(), "ok") | {"clone3": "ENOSYS"}
    if ARCH == "x86_64":
        everything["x32 getpid"] = [0x40000000 | 39]
        expected |= {"x32 getpid": "ENOSYS", "int 0x80": "SIGSYS"}
    results = probe_results({**everything, **targeted_probes(), **allowed_probes()}, seccomp=True)
    assert results == expected


@requires_filter
@pytest.mark.skipif(os.geteuid() != 0, reason="without root, bubblewrap drops the capabilities these calls need")
def test_same_calls_work_without_filter():
    """The EPERMs above come from the filter: bubblewrap alone (run by root) lets these calls through."""
    results = probe_results(targeted_probes(), seccomp=False)
    if results.get("int 0x80") == "SIGSEGV":  # the kernel has no i386 emulation (ia32_emulation=0)
        del results["int 0x80"]
    refused = {name: result for name, result in results.items() if result in ("EPERM", "ENOSYS", "SIGSYS", "error")}
    assert refused == {}, results
    for name in ("ptrace(PTRACE_TRACEME)", "unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)"):
        assert results[name] == "ok"


LAB_WORK = r"""
import multiprocessing, os, subprocess, threading, time
import torch

def square(x):
    return x * x

status = open("/proc/self/status").read()
assert "Seccomp:\t2" in status and (FILTERS is None or f"Seccomp_filters:\t{FILTERS}" in status), status
start = time.monotonic()
torch.manual_seed(0)
a = torch.randn(64, 64)
assert torch.allclose(a @ torch.eye(64), a)
torch.set_num_threads(2)
big = torch.randn(512, 512)
assert torch.isfinite(big @ big).all()
pid = os.fork()
if pid == 0:
    os._exit(7)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
with multiprocessing.get_context("fork").Pool(2) as pool:
    assert pool.map(square, range(6)) == [0, 1, 4, 9, 16, 25]
data = torch.utils.data.TensorDataset(torch.arange(8.0))
loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2)
assert [batch[0].tolist() for batch in loader] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
results = []
threads = [threading.Thread(target=results.append, args=(i,)) for i in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert sorted(results) == [0, 1, 2, 3]
subprocess.run(["/bin/true"], check=True)
with open("/job/out.txt", "w") as out:
    out.write("written under seccomp")
time.sleep(0.01)
assert time.time() > 1.7e9 and time.monotonic() > start
print("lab work ok")
"""


@requires_filter
def test_lab_work_runs_under_filter(tmp_path):
    """Ordinary deep-learning work succeeds in one filtered process; bubblewrap's own setup (namespaces, the
    mounts of /tmp, /proc, /dev and /job) happens before it applies the filter, so the filter does not hinder it."""
    isolation = ["--unshare-user", "--disable-userns", "--unshare-ipc", "--unshare-net", "--unshare-uts"]
    isolation += ["--unshare-cgroup-try", "--cap-drop", "ALL", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    isolation += ["--tmpfs", "/dev/shm", "--bind", str(tmp_path), "/job"]
    for prefix in sorted({sys.prefix, sys.base_prefix}):  # a checkout or venv under /tmp stays visible
        isolation += ["--ro-bind", prefix, prefix]
    isolation += ["--remount-ro", "/"]
    # Seccomp mode 2 with one filter more than this process has (a container may have its own).
    own = re.search(r"^Seccomp_filters:\s*(\d+)", Path("/proc/self/status").read_text(), re.M)
    done = bwrap(f"FILTERS = {int(own[1]) + 1 if own else None}\n{LAB_WORK}", *isolation)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "lab work ok\n"
    assert (tmp_path / "out.txt").read_text() == "written under seccomp"
