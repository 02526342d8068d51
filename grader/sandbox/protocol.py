"""Data exchanged between the trusted grader and the sandboxed child process.

This module is imported by both sides, so it depends only on the standard library and pydantic.
The child writes ``reply.json`` (a :class:`ChildReply`) and ``outputs.safetensors``; the parent
treats both as untrusted input and validates them before use.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

SUBMISSION_FILE = "submission.py"
REQUEST_FILE = "request.json"
INPUTS_FILE = "inputs.safetensors"
REPLY_FILE = "reply.json"
OUTPUTS_FILE = "outputs.safetensors"
PROGRESS_FILE = "progress"  # "done total", rewritten by lab tasks as they go; for display only
#: The child writes its reply, outputs and progress to these inherited descriptors, opened by the parent on files
#: outside the sandbox: the child's own folder is a tmpfs that ends with it, and the host's disk holds no more of
#: a job than these files and its log, each at most ``Limits.output_mb`` (RLIMIT_FSIZE).
REPLY_FD, OUTPUTS_FD, PROGRESS_FD = 3, 4, 5
#: Descriptors that only bubblewrap reads (the user namespace and the seccomp filter); the child closes them.
USERNS_FD, SECCOMP_FD = 6, 7

#: Tensor names accepted in both directions.
TENSOR_NAME_RE = re.compile(r"^[A-Za-z0-9_./-]{1,200}$")
#: Tensor dtypes accepted in both directions, spelled as numpy dtype names.
ALLOWED_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"})

#: Contract names reported by the builtin "load" task.
CONTRACT_NAMES = ("circle_model", "SIGMAS", "deep_model", "mnist_model", "fold_batchnorm", "tanh_model")

FailureKind = Literal[
    "timeout",
    "cpu_time",
    "memory",
    "output_limit",
    "process_limit",
    "idle",
    "exit",
    "crash",
    "syntax_error",
    "import_error",
    "missing_name",
    "contract",
    "exception",
    "invalid_reply",
    "grader_error",
]

_MESSAGE_MAX = 4000
_TRACEBACK_MAX = 16000


class ContractError(Exception):
    """Raised by child-side task code when student objects break the lab contract.

    The message is shown to the student verbatim, so it must say what was expected and what was found,
    e.g. ``"circle_model() must return a torch.nn.Module, but it returned a list."``.
    """


class Limits(BaseModel):
    """Resource limits for one sandboxed job (one task). Where the host has cgroups, CPU time, memory and
    processes are counted over the whole job (see :mod:`grader.sandbox.cgroups`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Wall-clock backstop; a busy machine slows a job down, so budgets are counted in CPU and idle time first.
    wall_seconds: float = Field(default=600, gt=0)
    #: CPU time of all the job's processes together (per process where the host has no cgroups).
    cpu_seconds: float = Field(default=600, gt=0)
    #: Time the job may spend neither running nor waiting for a CPU (sleeping, blocked), all of it added up.
    idle_seconds: float = Field(default=20, gt=0)
    #: Memory of all the job's processes and of its private /job, /tmp and /dev/shm together; also each
    #: process's address space (RLIMIT_AS).
    memory_mb: int = Field(default=6144, gt=0)
    #: Processes *and threads* the job may have at once.
    processes: int = Field(default=256, gt=0, le=1_000_000)
    #: Largest file the child may write (its stdout/stderr log and its outputs included).
    output_mb: int = Field(default=256, gt=0)
    reply_json_kb: int = Field(default=2048, gt=0)
    log_tail_bytes: int = Field(default=8192, ge=0)


class Isolation(BaseModel):
    """What isolation was in force; shown to students, so every statement must be true."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["bubblewrap", "rlimits"]
    network_isolated: bool
    filesystem: str
    limits: Limits
    notes: list[str]
    #: cgroup features in force for every job: "cpu" (the grading's CPU quota), "cpuacct" (CPU time counted over
    #: the job), "memory" (summed over the job), "pids" (processes and threads of the job).
    cgroup: list[str] = []
    #: The unprivileged host uid the student's code ran as (None: the grader's own uid).
    sandbox_uid: int | None = None
    #: Whether the seccomp filter was in force.
    seccomp: bool = False


class SandboxFailure(BaseModel):
    """Why a job did not produce a result, phrased for the student."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FailureKind
    #: One or two sentences saying what went wrong and what to do about it.
    message: str = Field(max_length=_MESSAGE_MAX)
    #: Frames from the student's own file only (shown as "submission.py") plus the final exception line.
    traceback: str | None = Field(default=None, max_length=_TRACEBACK_MAX)


class TaskRequest(BaseModel):
    """Contents of ``request.json``: what the child must do."""

    model_config = ConfigDict(extra="forbid")

    task: str
    params: dict[str, JsonValue]
    device: Literal["cpu", "cuda"]
    threads: int | None = Field(default=None, gt=0)
    #: Copied here so that the child can quote the limits in its messages.
    limits: Limits
    #: Unix time at which the parent kills the job (the child dumps its stack to the log just before).
    deadline: float


class ForwardParams(BaseModel):
    """Parameters of the builtin "forward" task."""

    model_config = ConfigDict(extra="forbid")

    factory: str
    args: list[JsonValue] = []
    kwargs: dict[str, JsonValue] = {}
    seed: int = 0
    train: bool = False
    #: When given, the output must have exactly this shape (-1 matches any size).
    expected_shape: list[int] | None = None


class ChildReply(BaseModel):
    """Contents of ``reply.json``; ``token`` must echo the secret the parent sent on the child's stdin."""

    model_config = ConfigDict(extra="forbid")

    token: str
    ok: bool
    meta: dict[str, JsonValue]
    failure: SandboxFailure | None

    @model_validator(mode="after")
    def _ok_xor_failure(self) -> ChildReply:
        if self.ok == (self.failure is not None):
            raise ValueError("exactly one of ok=true and a failure must be given")
        return self
