"""Reading and validating what the sandboxed child left in its job folder (trusted side).

Everything in the job folder is untrusted: files may be missing, huge, symbolic links, FIFOs, forged
by student code or not what their names say. Nothing here unpickles or executes anything; tensors
are parsed only by the safetensors format parser.
"""

from __future__ import annotations

import dataclasses
import errno
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from pydantic import ValidationError

from grader.sandbox.protocol import (
    ALLOWED_DTYPES,
    OUTPUTS_FILE,
    REPLY_FILE,
    TENSOR_NAME_RE,
    ChildReply,
    Limits,
    SandboxFailure,
)
from grader.text import LOG_TAIL_LIMIT, MESSAGE_LIMIT, META_LIMIT, TRACEBACK_LIMIT, clean, clean_data

_MIB = 1024 * 1024


@dataclass
class SandboxReply:
    """Outcome of one sandboxed job; exactly one of ``ok`` and ``failure`` is set."""

    ok: bool
    #: JSON data from the task (empty on failure).
    meta: dict[str, Any]
    #: Validated output tensors (empty on failure).
    tensors: dict[str, np.ndarray]
    failure: SandboxFailure | None
    #: The last bytes of the child's combined stdout/stderr, decoded with errors="replace".
    log_tail: str
    wall_seconds: float
    #: CPU time and peak memory of the whole job, where its cgroup counted them.
    cpu_seconds: float | None = None
    memory_peak_mb: float | None = None


def clean_reply(reply: SandboxReply) -> SandboxReply:
    """The reply with every text the child controls cleaned (grader.text): the failure's message and traceback,
    every string in the meta data (its keys included) and the log tail."""
    failure = reply.failure
    if failure is not None:
        traceback = None if failure.traceback is None else clean(failure.traceback, TRACEBACK_LIMIT, lines=True)
        failure = SandboxFailure(kind=failure.kind, message=clean(failure.message, MESSAGE_LIMIT), traceback=traceback)
    meta = clean_data(reply.meta, META_LIMIT)
    return dataclasses.replace(
        reply,
        meta=meta if isinstance(meta, dict) else {},
        failure=failure,
        log_tail=clean(reply.log_tail, LOG_TAIL_LIMIT, lines=True),
    )


class InvalidReply(Exception):
    """The child's reply cannot be used; the message says why, in terms a student can act on."""


def read_reply(job: Path, token: str, limits: Limits) -> tuple[ChildReply, dict[str, np.ndarray]] | None:
    """Load and validate ``reply.json`` (and ``outputs.safetensors`` when it reports success).

    Returns None when there is no reply file; raises :class:`InvalidReply` when anything is malformed
    or the reply does not carry ``token``, the secret only the genuine child was given.
    """
    raw = _read_regular_file(job / REPLY_FILE, limits.reply_json_kb * 1024)
    if raw is None:
        return None
    try:
        reply = ChildReply.model_validate_json(raw)
    except ValidationError:
        raise InvalidReply(f"{REPLY_FILE} is not in the format the grader writes") from None
    if not hmac.compare_digest(reply.token.encode(), token.encode()):
        raise InvalidReply(f"{REPLY_FILE} was not written by the grader")
    if not reply.ok:
        return reply, {}
    data = _read_regular_file(job / OUTPUTS_FILE, limits.output_mb * _MIB)
    if data is None:
        raise InvalidReply(f"{OUTPUTS_FILE} is missing")
    return reply, load_tensors(data)


def load_tensors(data: bytes) -> dict[str, np.ndarray]:
    """Parse safetensors bytes, allowing only safe names and plain numeric/bool dtypes."""
    try:
        tensors = safetensors.numpy.load(data)
    except Exception:  # the parser's errors are not a stable API; any failure means a bad file
        raise InvalidReply(f"{OUTPUTS_FILE} is not a valid safetensors file of supported dtypes") from None
    for name, array in tensors.items():
        if not TENSOR_NAME_RE.fullmatch(name):
            raise InvalidReply(f"{OUTPUTS_FILE} contains a tensor with an invalid name")
        if not isinstance(array, np.ndarray) or array.dtype.name not in ALLOWED_DTYPES:
            raise InvalidReply(f"tensor {name!r} in {OUTPUTS_FILE} has an unsupported dtype")
    return tensors


def _read_regular_file(path: Path, max_bytes: int) -> bytes | None:
    """Read ``path`` if it is a regular file (not a link, FIFO or device) of at most ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        reason = "is a symbolic link" if error.errno == errno.ELOOP else "cannot be opened"
        raise InvalidReply(f"{path.name} {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidReply(f"{path.name} is not a regular file")
        if info.st_size > max_bytes:
            raise InvalidReply(f"{path.name} is larger than the limit of {max_bytes} bytes")
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0 and (chunk := os.read(fd, min(remaining, _MIB))):
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise InvalidReply(f"{path.name} is larger than the limit of {max_bytes} bytes")
    return data
