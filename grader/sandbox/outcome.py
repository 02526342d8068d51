"""Turning how the sandboxed child ended into a :class:`SandboxReply` for the student (trusted side).

Every text in the reply (failure message and traceback, the child's meta, the log tail) comes from the child or
from the student's file: it is cleaned here (grader.text: no escape sequences or control characters, cut to the
documented lengths) before anything on the trusted side keeps, prints or renders it.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from pathlib import Path

from grader.sandbox.process import ChildExit
from grader.sandbox.protocol import OUTPUTS_FILE, REPLY_FILE, SUBMISSION_FILE, FailureKind, Limits, SandboxFailure
from grader.sandbox.reply import InvalidReply, SandboxReply, clean_reply, read_reply
from grader.text import MESSAGE_LIMIT, NAME_LIMIT, TRACEBACK_LIMIT, clean

_MEMORY_WORDS = ("bad_alloc", "Cannot allocate memory", "out of memory", "MemoryError")
#: Faulthandler dumps: one block per thread, each listing the most recent call first.
_DUMP_THREAD = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-f]+", re.MULTILINE)
_DUMP_FRAME = re.compile(r'^\s*File "[^"]*/job/submission\.py", line (\d+) in (\S+)', re.MULTILINE)
_FATAL_ERROR = re.compile(r"^Fatal Python error: (.+)$", re.MULTILINE)
_MAX_SOURCE_LINE = 300  # a line of the student's file, as shown in a traceback
#: The sandbox's name of the student's file, as the child's messages and tracebacks show it.
_SHOWN_NAME = re.compile(r"(?<![\w.\-/])" + re.escape(SUBMISSION_FILE) + r"(?![\w\-])")


def reply_for(
    child: ChildExit,
    job: Path,
    token: str,
    limits: Limits,
    stage: str,
    source: list[str],
    shown_as: str = SUBMISSION_FILE,
) -> SandboxReply:
    """The reply for a job: a failure when the child timed out, was killed or exited abnormally, else
    what it left in ``job``, validated. ``stage`` says where to look for slow code ("in circle_model()");
    ``source`` holds the lines of the student's file, for tracebacks; ``shown_as`` is the file's name as the
    student knows it, which the failure's texts say instead of the sandbox's own name for it (submission.py).
    Every text in the reply is cleaned.
    """
    reply = clean_reply(shown_under(_reply_for(child, job, token, limits, stage, source), shown_as))
    return dataclasses.replace(reply, cpu_seconds=child.cpu_seconds, memory_peak_mb=child.memory_peak_mb)


def shown_under(reply: SandboxReply, name: str) -> SandboxReply:
    """The reply with the student's file named `name` (cleaned) in its failure's message and traceback, where the
    child and this module call it submission.py. The texts are cleaned (and cut) afterwards as usual."""
    name = clean(name, NAME_LIMIT)
    if reply.failure is None or not name or name == SUBMISSION_FILE:
        return reply
    f = reply.failure

    def named(text: str) -> str:
        return _SHOWN_NAME.sub(lambda _: name, text)

    failure = SandboxFailure.model_construct(  # the cut to the protocol's lengths comes with the cleaning
        kind=f.kind, message=named(f.message), traceback=None if f.traceback is None else named(f.traceback)
    )
    return dataclasses.replace(reply, failure=failure)


def _reply_for(child: ChildExit, job: Path, token: str, limits: Limits, stage: str, source: list[str]) -> SandboxReply:
    log_tail = child.log_tail.decode("utf-8", errors="replace")

    def failed(kind: FailureKind, message: str, traceback: str | None = None) -> SandboxReply:
        # cut before the model is built: its length limits must not turn a long text into an exception here
        failure = SandboxFailure(
            kind=kind,
            message=clean(message, MESSAGE_LIMIT),
            traceback=None if traceback is None else clean(traceback, TRACEBACK_LIMIT, lines=True),
        )
        return SandboxReply(False, {}, {}, failure, log_tail, child.wall_seconds)

    if child.timed_out:
        return failed(
            "timeout",
            f"Your file did not finish within {limits.wall_seconds:g} s (wall-clock limit). Look for an "
            f"infinite loop or very slow code {stage}.",
            _dumped_traceback(log_tail, "(your code was still running here when time ran out)", source),
        )
    if child.stopped is not None:
        kind, message = _stop_failure(child.stopped, limits, stage)
        return failed(kind, message, _dumped_traceback(log_tail, "(your code was here when it was stopped)", source))
    if child.signal is not None:
        fatal = _FATAL_ERROR.search(log_tail)
        last_line = (
            f"Fatal Python error: {fatal.group(1)}" if fatal else f"Killed by {signal.Signals(child.signal).name}"
        )
        kind, message = _signal_failure(child, log_tail, limits, stage)
        return failed(kind, message, _dumped_traceback(log_tail, last_line, source))
    if child.exit_code != 0:
        return failed("exit", _exit_message(child.exit_code))
    try:
        read = read_reply(job, token, limits)
    except InvalidReply as error:
        return failed(
            "invalid_reply",
            f"The grader could not use the result of your code: {error}. Do not create or change files "
            f"named {REPLY_FILE} or {OUTPUTS_FILE}, and do not replace the grader's own functions.",
        )
    if read is None:
        return failed("exit", _exit_message(0))
    reply, tensors = read
    return SandboxReply(reply.ok, reply.meta, tensors, reply.failure, log_tail, child.wall_seconds)


def _stop_failure(reason: str, limits: Limits, stage: str) -> tuple[FailureKind, str]:
    """The failure for a job the grader stopped at a job-wide limit (counted over all its processes)."""
    if reason == "cpu_time":
        return "cpu_time", (
            f"Your code used more than {limits.cpu_seconds:g} s of CPU time, all its processes and threads "
            f"together (this task's CPU budget, several times what the reference solution needs). Look for an "
            f"infinite loop or very slow code {stage}."
        )
    if reason == "grading_cpu":
        return "cpu_time", (
            "Your file used up the CPU time of its whole grading (all the grader's tasks together may use a few "
            f"times what the reference solution needs in all), here {stage}. Look for infinite loops, busy "
            "processes or threads, or very slow code in the functions the grader calls."
        )
    if reason == "idle":
        return "idle", (
            f"Your code sat idle for more than {limits.idle_seconds:g} s in all (sleeping or waiting, neither "
            f"computing nor waiting for a CPU) {stage}. Remove sleeps and waits for input, the network or other "
            "processes: the lab needs none."
        )
    if reason == "process_limit":
        return "process_limit", (
            f"Your code tried to run more than {limits.processes} processes and threads at once (the process "
            f"limit of a task) {stage}. Do not start processes or threads in a loop; the lab does not need "
            "multiprocessing."
        )
    return "memory", (
        f"Your code was stopped because it used more than {limits.memory_mb} MB of memory, all its processes and "
        f"the files it wrote to /tmp, /dev/shm and its working folder together (memory limit), {stage}. Use "
        "smaller tensors or batches, and do not keep large objects or files you no longer need."
    )


def _signal_failure(child: ChildExit, log_tail: str, limits: Limits, stage: str) -> tuple[FailureKind, str]:
    sig = child.signal
    cpu_message = (
        f"Your code used more than {limits.cpu_seconds:g} s of CPU time (CPU-time limit). Look for an "
        f"infinite loop or very slow code {stage}."
    )
    memory_message = (
        f"Your code was stopped because it used too much memory (limit {limits.memory_mb} MB). Use "
        "smaller tensors or batches, and do not keep large objects you no longer need."
    )
    if sig == signal.SIGXCPU:
        return "cpu_time", cpu_message
    if sig == signal.SIGXFSZ:
        return "output_limit", (
            f"Your code wrote more than {limits.output_mb} MB to a file or to the screen (output limit). "
            "Remove print statements inside loops and do not write large files."
        )
    if sig == signal.SIGKILL:  # not ours (no timeout): the CPU hard limit or the kernel's OOM killer
        if child.cpu_seconds >= limits.cpu_seconds:
            return "cpu_time", cpu_message
        return "memory", memory_message
    if any(word in log_tail for word in _MEMORY_WORDS):
        return "memory", memory_message
    return "crash", (
        f"The Python process running your code crashed ({signal.Signals(sig).name}). This usually means "
        "native code failed, e.g. a tensor operation on invalid data; see the output log for details."
    )


def _dumped_traceback(log_tail: str, last_line: str, source: list[str]) -> str | None:
    """The student's frames from the last faulthandler dump in the log, as a traceback; None without any.

    Takes the thread that crashed ("Current thread") or else the last one listed, usually the main thread.
    """
    starts = [match.start() for match in _DUMP_THREAD.finditer(log_tail)]
    blocks = [log_tail[start:end] for start, end in zip(starts, [*starts[1:], len(log_tail)], strict=False)]
    with_frames = [block for block in blocks if _DUMP_FRAME.search(block)]
    if not with_frames:
        return None
    current = [block for block in with_frames if block.startswith("Current thread")]
    frames = _DUMP_FRAME.findall((current or with_frames)[-1])
    lines = ["Traceback (most recent call last):"]
    for number, name in reversed(frames):
        lines.append(f'  File "submission.py", line {number}, in {name}')
        if 0 < int(number) <= len(source) and source[int(number) - 1].strip():
            lines.append(f"    {clean(source[int(number) - 1].strip(), _MAX_SOURCE_LINE)}")
    lines.append(last_line)
    return "\n".join(lines)


def _exit_message(code: int) -> str:
    return (
        f"Your code ended the Python process (exit code {code}) before the grader could collect its "
        "results. Do not call os._exit(), sys.exit() or exit() in your file, not even in helper processes."
    )
