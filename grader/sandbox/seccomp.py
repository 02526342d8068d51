"""A seccomp filter for the sandboxed child, compiled by hand to classic BPF for ``bwrap --seccomp FD``.

Policy, checked in this order for every system call:

1. The call's ABI must be the machine's own (``AUDIT_ARCH_X86_64`` or ``AUDIT_ARCH_AARCH64``); any
   other, such as i386 calls through ``int 0x80`` on x86_64, kills the whole process
   (``SECCOMP_RET_KILL_PROCESS``): the numbers below would mean other calls there.
2. On x86_64, x32 calls (number with bit 0x40000000 set) fail with ENOSYS.
3. The calls in :data:`DENIED` fail with EPERM: nothing a deep-learning lab needs, but the way to
   kernel attack surface (io_uring, bpf, perf, keyrings, userfaultfd), to other processes (ptrace,
   process_vm_*), to mounts and namespaces, to modules, and to host-wide settings (clock, hostname...).
4. The calls in :data:`RESTRICTED` are allowed only in part: ``clone`` without any CLONE_NEW* flag,
   ``personality`` only to query it or to set the default PER_LINUX, and ``clone3`` fails with ENOSYS
   (its flags are in memory that seccomp cannot read; glibc then falls back to ``clone``).
5. Everything else is allowed.

The module uses only the standard library: it runs on the grader's side.
"""

from __future__ import annotations

import os
import platform
import struct

#: ``struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}``; both supported ABIs are little-endian.
_SOCK_FILTER = struct.Struct("<HBBI")
# Classic BPF opcodes (linux/bpf_common.h): load a word at an absolute offset, compare, return.
_LD_ABS_W = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
# Offsets in struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6]}.
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
# Return values (linux/seccomp.h).
_KILL_PROCESS = 0x80000000
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000
#: clone() flags that make a new namespace. CLONE_NEWTIME (0x80) only works through clone3 and unshare: for clone()
#: that bit is part of the exit signal, where no valid signal sets it, so masking it too costs nothing.
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
#: personality() arguments allowed: PER_LINUX, and 0xffffffff which only reads the current persona.
_PERSONALITY_ALLOWED = (0, 0xFFFFFFFF)

#: System call numbers: (x86_64 from asm/unistd_64.h, aarch64 from asm-generic/unistd.h; None: no such call).
SYSCALL_NUMBERS: dict[str, tuple[int, int | None]] = {
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "kcmp": (312, 272),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "move_mount": (429, 429),
    "open_tree": (428, 428),
    "open_tree_attr": (467, 467),  # Linux 6.15, newer than some installed headers
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "unshare": (272, 97),
    "setns": (308, 268),
    "userfaultfd": (323, 282),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "syslog": (103, 116),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "clock_adjtime": (305, 266),
    "adjtimex": (159, 171),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "iopl": (172, None),
    "ioperm": (173, None),
    "fanotify_init": (300, 262),
    "lookup_dcookie": (212, 18),
    "vhangup": (153, 58),
    "personality": (135, 92),
    "clone": (56, 220),
    "clone3": (435, 435),
}

#: Calls allowed only in part, with what the filter does to them (for the isolation notes).
RESTRICTED: dict[str, str] = {
    "clone": "EPERM when asked for a new namespace (any CLONE_NEW* flag)",
    "clone3": "ENOSYS, so that the C library falls back to clone, whose flags the filter can check",
    "personality": "EPERM unless it only reads the persona or sets the default one (PER_LINUX)",
}
#: Calls that always fail with EPERM (iopl and ioperm exist on x86_64 only).
DENIED: tuple[str, ...] = tuple(name for name in SYSCALL_NUMBERS if name not in RESTRICTED)


class UnsupportedArchitectureError(ValueError):
    """No filter for this machine's architecture: the caller should run without one and say so."""


def syscall_numbers(arch: str | None = None) -> dict[str, int]:
    """Number of each filtered call that exists on ``arch`` (default: this machine's architecture)."""
    arch = arch or platform.machine()
    if arch not in _AUDIT_ARCH:
        raise UnsupportedArchitectureError(
            f"no seccomp filter for the {arch!r} architecture (supported: {', '.join(_AUDIT_ARCH)})"
        )
    column = 0 if arch == "x86_64" else 1
    return {name: numbers[column] for name, numbers in SYSCALL_NUMBERS.items() if numbers[column] is not None}


def filter_program(arch: str | None = None) -> bytes:
    """The filter for ``arch`` (default: this machine's), as the raw ``sock_filter`` array bwrap reads.

    Raises :class:`UnsupportedArchitectureError` for an architecture other than x86_64 and aarch64.
    """
    arch = arch or platform.machine()
    nr = syscall_numbers(arch)
    eperm, allow = (_RET, 0, 0, _ERRNO | _EPERM), (_RET, 0, 0, _ALLOW)
    # (code, jt, jf, k): jt and jf count the instructions to skip when the test holds or fails.
    program = [
        (_LD_ABS_W, 0, 0, _ARCH),
        (_JEQ, 1, 0, _AUDIT_ARCH[arch]),
        (_RET, 0, 0, _KILL_PROCESS),
        (_LD_ABS_W, 0, 0, _NR),
    ]
    if arch == "x86_64":
        program += [(_JSET, 0, 1, _X32_BIT), (_RET, 0, 0, _ERRNO | _ENOSYS)]
    for name in DENIED:
        if name in nr:
            program += [(_JEQ, 0, 1, nr[name]), eperm]
    program += [(_JEQ, 0, 1, nr["clone3"]), (_RET, 0, 0, _ERRNO | _ENOSYS)]
    # These two load an argument, so each ends with a return and the number is not needed afterwards.
    program += [(_JEQ, 0, 4, nr["clone"]), (_LD_ABS_W, 0, 0, _ARG0_LOW), (_JSET, 0, 1, CLONE_NEW_FLAGS), eperm, allow]
    low, high = _PERSONALITY_ALLOWED
    program += [(_JEQ, 0, 5, nr["personality"]), (_LD_ABS_W, 0, 0, _ARG0_LOW)]
    program += [(_JEQ, 2, 0, low), (_JEQ, 1, 0, high), eperm, allow]
    program.append(allow)
    return b"".join(_SOCK_FILTER.pack(*instruction) for instruction in program)


def filter_fd(arch: str | None = None) -> int:
    """A memfd holding :func:`filter_program`, positioned at its start: pass it in ``pass_fds`` and as
    ``--seccomp FD`` to bwrap, which reads and closes its copy; the caller closes this one."""
    fd = os.memfd_create("labgrader-seccomp")
    try:
        os.write(fd, filter_program(arch))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
