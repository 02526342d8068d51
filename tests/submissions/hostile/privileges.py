"""Hostile: at import, looks at who it is and tries what a lab never needs: io_uring, keyrings, bpf, ptrace, a new
user namespace, mounts, signalling its namespace's init, raising its priority, leaving its session's autogroup.
Prints one JSON line "PRIV {...}" with what happened."""

import ctypes
import json
import os
import signal

libc = ctypes.CDLL(None, use_errno=True)
report = {"uid": os.getuid(), "gid": os.getgid()}
with open("/proc/self/uid_map") as f:
    report["uid_map"] = f.read().split()
with open("/proc/self/status") as f:
    status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
for key in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
    report[key] = status.get(key, "").strip()


def attempt(name, call):
    try:
        result = call()
        report[name] = f"ok {result}"
    except OSError as error:
        report[name] = f"errno {error.errno}"


def syscall(number, *args):
    result = libc.syscall(number, *args)
    if result == -1:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


params = ctypes.create_string_buffer(120)
attempt("io_uring_setup", lambda: syscall(425, 8, params))
attempt("keyctl", lambda: syscall(250, 0, 0, 0, 0, 0))
attempt("bpf", lambda: syscall(321, 0, 0, 0))
attempt("ptrace_traceme", lambda: syscall(101, 0, 0, 0, 0))
attempt("unshare_user", lambda: syscall(272, 0x10000000))
attempt("mount", lambda: syscall(165, b"none", b"/tmp", b"tmpfs", 0, None))
attempt("kill_init", lambda: os.kill(1, signal.SIGKILL))
attempt("nice_down", lambda: os.setpriority(os.PRIO_PROCESS, 0, -5))
attempt("autogroup", lambda: open("/proc/self/autogroup", "w").write("0"))
print("PRIV " + json.dumps(report), flush=True)


def circle_model(sigma=None):
    from torch import nn

    return nn.Linear(2, 2)
