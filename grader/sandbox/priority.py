"""The sandbox's CPU priority against the rest of the machine.

A sandboxed child starts a session of its own (setsid, and bubblewrap's --new-session), and Linux gives every
session a scheduler autogroup of its own where autogroups are on (/proc/sys/kernel/sched_autogroup_enabled,
the default of most distributions). A nice value only ranks a process within its group: the groups share the
CPUs evenly whatever their processes' nice. So the nice 10 a worker takes (LABGRADER_WORKER_NICE) and its
children inherit would not lower the sandboxed tasks, which do all the grading's work, against the API: on a
shared 2-CPU machine the API's answers waited behind them. The child gives its new group its own nice value
before it imports anything heavy. Raising a nice value needs no privilege, and lowering it back needs one that
the sandbox drops, so a submission cannot undo it. A process whose session goes back to init without a setsid
is in the kernel's root group, and its /proc/self/autogroup reads empty; its children's new groups share the
CPUs with that root group just the same.

This module imports nothing but os: it runs first in the child, before torch.
"""

from __future__ import annotations

import os

AUTOGROUP = "/proc/self/autogroup"


def follow_nice() -> int | None:
    """Give this process's autogroup the process's own nice value when that is above 0. Returns the value set,
    or None where there was nothing to do or the kernel offers no autogroups (a best effort: never fails)."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice <= 0:
        return None
    try:
        with open(AUTOGROUP, "w", encoding="ascii") as f:
            f.write(str(nice))
    except OSError:
        return None
    return nice
