"""Untrusted side: runs inside the sandbox, imports the student's file, runs one task, writes the reply.

Protocol (job folder ``/job`` under bubblewrap): read the parent's secret token from stdin, then
``request.json`` (a :class:`TaskRequest`) and ``inputs.safetensors`` (as CPU tensors). Import
``submission.py`` as module ``submission``, run the task, write ``outputs.safetensors`` and then
``reply.json`` (a :class:`ChildReply` carrying the token), and end the process with ``os._exit(0)``,
so that student threads and atexit handlers cannot delay or change the outcome.

Two kinds of job run here. A *student job* imports the student's file and runs one of the builtin tasks below:
"build" (grader.sandbox.inside.build: build every model and capture it as a graph), "load" and "forward". A
*trusted job* gets no student file: it runs one of ``grader.tasks.TASKS`` on models rebuilt from captured
graphs, and the student's code never runs in its process. Tasks raise :class:`ContractError` when student
objects break the lab's contract; anything else raised in a student job is reported as an exception in the
student's code.

The student's code runs in this very process and can change anything in it, including reading the
token from memory. That can only spoil its own grade: the trusted parent validates everything written
here. This module only guards against accidents: it keeps its own references to the functions that
write the reply (student code may monkeypatch builtins, json, os or torch) and never lets a forked
copy of this process write a reply.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import functools
import importlib.util
import inspect
import json
import math
import os
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import torch
from safetensors.torch import load_file, save

from grader.device import deterministic
from grader.sandbox.protocol import (
    _MESSAGE_MAX,
    _TRACEBACK_MAX,
    ALLOWED_DTYPES,
    CONTRACT_NAMES,
    INPUTS_FILE,
    OUTPUTS_FD,
    REPLY_FD,
    REQUEST_FILE,
    SECCOMP_FD,
    SUBMISSION_FILE,
    TENSOR_NAME_RE,
    USERNS_FD,
    ContractError,
    FailureKind,
    ForwardParams,
    SandboxFailure,
    TaskRequest,
)

#: A finished task: (meta as JSON text, outputs as safetensors bytes), or why it failed.
Outcome = tuple[str, bytes] | SandboxFailure

# Private references, taken before any student code runs.
_dumps = json.dumps
_save = save
_getpid = os.getpid
_exit = os._exit
_pwrite, _ftruncate = os.pwrite, os.ftruncate
_MEMORY_ERRORS = (MemoryError, torch.OutOfMemoryError)

_MAX_FRAMES = 20
_DUMP_MARGIN_S = 0.5
_MAX_EXCEPTION_TEXT = 1000
_MAX_NAME = 200  # an exception's class name or a function's name, as shown
_MAX_SOURCE_LINE = 300  # a line of the student's file, as shown in a traceback
_SHOWN_AS = "submission.py"


def main(job_dir: str) -> NoReturn:
    """Run the job in ``job_dir`` and end the process."""
    main_pid = _getpid()
    for fd in (USERNS_FD, SECCOMP_FD):  # bubblewrap's, not the student's
        with contextlib.suppress(OSError):
            os.close(fd)
    job = Path(job_dir)
    os.chdir(job)
    token = _read_token()
    sys.stdout.reconfigure(line_buffering=True)  # keep prints and tracebacks in order in the log
    request = TaskRequest.model_validate_json((job / REQUEST_FILE).read_bytes())
    # Stacks in the log let the parent show where the student's code was at a timeout or CPU limit.
    faulthandler.dump_traceback_later(max(0.1, request.deadline - time.time() - _DUMP_MARGIN_S))
    faulthandler.register(signal.SIGXCPU, chain=True)
    if request.threads is not None:
        torch.set_num_threads(request.threads)
    deterministic(request.device)
    inputs = load_file(job / INPUTS_FILE)
    outcome = _run(job / SUBMISSION_FILE, request, inputs)
    if _getpid() != main_pid:
        _end_forked_copy(outcome)
    _flush_student_output()
    _write_reply(token, outcome, request.limits.output_mb)
    _exit(0)


def _end_forked_copy(outcome: Outcome) -> NoReturn:
    """End a copy of this process forked by student code without writing a reply.

    A copy stopped by the process limit stays parked instead: exiting would free its slot and let a fork
    bomb go on forever, while parked copies keep the limit reached until the original process sees it.
    They die with the job's PID namespace.
    """
    if isinstance(outcome, SandboxFailure) and outcome.kind == "process_limit":
        while True:
            signal.pause()
    _exit(0)


def _read_token() -> str:
    """Read the parent's token from stdin, then leave /dev/null there for the student's code."""
    data = b""
    while not data.endswith(b"\n") and (chunk := os.read(0, 256)):
        data += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return data.decode().strip()


def _run(path: Path, request: TaskRequest, inputs: dict[str, torch.Tensor]) -> Outcome:
    if request.task not in _BUILTIN_TASKS:
        return _run_trusted(request, inputs)
    try:
        module = _import_submission(path)
    except BaseException as error:  # whatever the student's import raises is reported
        return _import_failure(error, path, request)
    if request.task == "build":
        from grader.sandbox.inside.build import build

        task = functools.partial(build, describe=lambda e: _task_failure(e, module, path, request))
    else:
        task = functools.partial(_BUILTIN_TASKS[request.task], device=request.device)
    try:
        meta, tensors = task(module, request.params, inputs)
        return _dumps(meta), _save(_wire_tensors(tensors))
    except BaseException as error:  # whatever the student's code raises is reported
        return _task_failure(error, module, path, request)


def _run_trusted(request: TaskRequest, inputs: dict[str, torch.Tensor]) -> Outcome:
    """A trusted task on rebuilt models; no student file is imported in this process."""
    from grader.tasks import TASKS, Models

    try:
        meta, tensors = TASKS[request.task](Models(request.params, inputs), request.params, inputs)
        return _dumps(meta), _save(_wire_tensors(tensors))
    except BaseException as error:
        stage = _task_stage(request)
        limit = _limit_failure(error, Path("/nonexistent"), request, stage)
        if limit is not None:
            return limit
        if isinstance(error, ContractError):
            return _failure(kind="contract", message=_shorten(str(error), _MAX_EXCEPTION_TEXT))
        from grader.graph.schema import GraphError

        if isinstance(error, GraphError):
            return _failure(kind="contract", message=_shorten(f"Your model {error}", _MAX_EXCEPTION_TEXT))
        traceback.print_exc()  # the grader's own error: its traceback goes to the job's log, for the instructor
        return _failure(
            kind="grader_error",
            message=f"The grader failed while {stage} on your rebuilt model ({_type_name(error)}: "
            f"{_shorten(str(error), 300)}). Your other checks are scored as usual; tell your instructor, who can "
            "regrade it.",
        )


def _import_submission(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("submission", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["submission"] = module
    spec.loader.exec_module(module)
    return module


# --- builtin tasks -----------------------------------------------------------------------------


def _task_load(
    module: types.ModuleType, params: dict, inputs: dict[str, torch.Tensor], device: str
) -> tuple[dict, dict]:
    """Report the kind of each contract name and the SIGMAS dict when it is well-formed."""
    namespace = vars(module)
    names = {name: _kind(namespace[name]) if name in namespace else "missing" for name in CONTRACT_NAMES}
    return {"names": names, "sigmas": _sigmas(namespace.get("SIGMAS"))}, {}


def _task_forward(
    module: types.ModuleType, params: dict, inputs: dict[str, torch.Tensor], device: str
) -> tuple[dict, dict]:
    """Build ``factory(*args, **kwargs)`` after seeding torch and return its output on ``inputs["x"]``,
    both on ``device``."""
    spec = ForwardParams.model_validate(params)
    name = spec.factory
    factory = getattr(module, name)
    if not callable(factory):
        raise ContractError(f"`{name}` must be a function, but it is {_describe(factory)}.")
    x = inputs["x"].to(device)
    torch.manual_seed(spec.seed)
    model = factory(*spec.args, **spec.kwargs)
    if not isinstance(model, torch.nn.Module):
        raise ContractError(f"{name}() must return a torch.nn.Module, but it returned {_describe(model)}.")
    model.to(device)
    model.train(spec.train)
    with torch.no_grad():
        y = model(x)
    if not isinstance(y, torch.Tensor):
        raise ContractError(f"The model built by {name}() must return a tensor, but it returned {_describe(y)}.")
    expected = spec.expected_shape
    if expected is not None and (
        y.dim() != len(expected) or any(want not in (-1, got) for want, got in zip(expected, y.shape, strict=True))
    ):
        shape = ", ".join("any" if size == -1 else str(size) for size in expected)
        raise ContractError(
            f"The model built by {name}() returned a tensor of shape {tuple(y.shape)} for an input of shape "
            f"{tuple(x.shape)}, but the expected shape is ({shape})."
        )
    return {}, {"y": y}


_BUILTIN_TASKS: dict[str, Callable[..., tuple[dict, dict]] | None] = {
    "load": _task_load,
    "forward": _task_forward,
    "build": None,  # grader.sandbox.inside.build, imported only where it runs
}


def _kind(value: object) -> str:
    if inspect.isfunction(value):
        return "function"
    if isinstance(value, dict):
        return "dict"
    return f"other:{type(value).__name__}"


def _sigmas(value: object) -> dict[str, float] | None:
    if type(value) is not dict:
        return None
    sigmas = {}
    for key, sigma in value.items():
        if type(key) is not str or type(sigma) not in (int, float) or not math.isfinite(sigma):
            return None
        sigmas[key] = float(sigma)
    return sigmas


def _describe(value: object) -> str:
    return f"a value of type {type(value).__name__!r}"


def _wire_tensors(tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, unshared copies of the task's tensors, checked against the protocol."""
    wire = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not TENSOR_NAME_RE.fullmatch(name):
            raise ContractError(f"The grader cannot send back an output named {name!r}.")
        if not isinstance(tensor, torch.Tensor):
            raise ContractError(f"Output {name!r} must be a tensor, but it is {_describe(tensor)}.")
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in ALLOWED_DTYPES or tensor.layout != torch.strided:
            raise ContractError(
                f"Output {name!r} is a {tensor.layout} tensor of dtype {dtype}; the grader accepts only "
                f"dense tensors of dtype {', '.join(sorted(ALLOWED_DTYPES))} (convert it, e.g. with "
                ".float())."
            )
        wire[name] = tensor.detach().to("cpu", copy=True).contiguous()
    return wire


# --- failures ----------------------------------------------------------------------------------


def _failure(kind: FailureKind, message: str, traceback: str | None = None) -> SandboxFailure:
    """A failure whose texts fit the protocol's limits (whatever the student's names and messages hold), so that
    building it cannot fail; the grading side cleans them again."""
    message = _shorten(message, _MESSAGE_MAX)
    if traceback is not None:
        if len(traceback) > _TRACEBACK_MAX:  # keep the end: its last line says what was raised
            half = _TRACEBACK_MAX // 2 - 10
            traceback = f"{traceback[:half]}\n...\n{traceback[-half:]}"
        traceback = _shorten(traceback, _TRACEBACK_MAX)
    return SandboxFailure(kind=kind, message=message, traceback=traceback)


def _shorten(text: str, limit: int) -> str:
    """At most `limit` characters, and encodable as UTF-8 (lone surrogates would make the reply invalid JSON)."""
    if len(text) > limit:
        text = text[: limit - 4] + " ..."
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _type_name(error: BaseException) -> str:
    return _shorten(type(error).__name__, _MAX_NAME)


def _import_failure(error: BaseException, path: Path, request: TaskRequest) -> SandboxFailure:
    stage = "the grader was importing your file"
    if isinstance(error, SyntaxError) and error.filename == str(path):
        return _failure(
            kind="syntax_error",
            message=f"Your file has a syntax error on line {error.lineno}: {error.msg}. Fix it so that "
            "`python submission.py` runs without errors.",
            traceback=_syntax_traceback(error),
        )
    if isinstance(error, SystemExit):
        return _failure(
            kind="exit",
            message=f"Your file called sys.exit() (or exit()/quit()) with code {error.code!r} while {stage}. "
            'Remove that call, or move it under `if __name__ == "__main__":`.',
            traceback=_student_traceback(error, path),
        )
    limit = _limit_failure(error, path, request, stage)
    if limit is not None:
        return limit
    if isinstance(error, ModuleNotFoundError) and error.name:
        message = (
            f"Your file imports the module '{error.name}', which is not installed in the grading "
            "environment (torch, numpy and the standard library are). Remove that import or move it "
            'under `if __name__ == "__main__":`.'
        )
    else:
        message = (
            f"Importing your file raised {_exception_line(error, path)}. The top level of your file runs "
            "when the grader imports it: fix the error, or move experiments under "
            '`if __name__ == "__main__":`.'
        )
    return _failure(kind="import_error", message=message, traceback=_student_traceback(error, path))


def _task_failure(error: BaseException, module: types.ModuleType, path: Path, request: TaskRequest) -> SandboxFailure:
    stage = _task_stage(request)
    if isinstance(error, SystemExit):
        return _failure(
            kind="exit",
            message=f"Your code called sys.exit() (or exit()/quit()) with code {error.code!r} while {stage}. "
            "Functions the grader calls must return normally; remove that call.",
            traceback=_student_traceback(error, path),
        )
    limit = _limit_failure(error, path, request, stage)
    if limit is not None:
        return limit
    if isinstance(error, ContractError):
        return _failure(kind="contract", message=_text(error, path), traceback=_student_traceback(error, path))
    if isinstance(error, AttributeError) and getattr(error, "obj", None) is module:
        return _failure(
            kind="missing_name",
            message=f"Your file does not define `{error.name}`, which the grader needs. Define it at the top "
            "level of your file, spelled exactly like this.",
        )
    return _failure(
        kind="exception",
        message=f"Your code raised {_exception_line(error, path)} while {stage}. The traceback shows "
        "where in your file.",
        traceback=_student_traceback(error, path),
    )


def _task_stage(request: TaskRequest) -> str:
    if request.task == "load":
        return "the grader was inspecting your file"
    if request.task == "forward":
        return f"the grader was building {request.params['factory']}() and running it on test inputs"
    if request.task == "build":
        return "the grader was building your models and recording what their forward passes do"
    return f"the grader was running its '{request.task}' check"


def _limit_failure(error: BaseException, path: Path, request: TaskRequest, stage: str) -> SandboxFailure | None:
    """A failure for a resource limit hit inside Python code, or None."""
    limits = request.limits
    chain = _chain(error)
    texts = [_text(item, path) for item in chain]
    if any(isinstance(item, _MEMORY_ERRORS) for item in chain) or any(
        "can't allocate memory" in text for text in texts
    ):
        kind = "memory"
        message = (
            f"Your code ran out of memory (limit {limits.memory_mb} MB) while {stage}. Use smaller "
            "tensors or batches, and do not keep large objects you no longer need."
        )
    elif any(isinstance(item, OSError) and item.errno == errno.EAGAIN for item in chain) or any(
        "can't start new thread" in text or "Resource temporarily unavailable" in text for text in texts
    ):
        kind = "process_limit"
        message = (
            f"Your code tried to run too many processes or threads at once (limit {limits.processes}) while "
            f"{stage}. Do not start processes or threads in a loop; the lab does not need multiprocessing."
        )
    elif any(isinstance(item, OSError) and item.errno == errno.EFBIG for item in chain):
        kind = "output_limit"
        message = (
            f"Your code wrote more than {limits.output_mb} MB to a file or to the screen (output limit) "
            f"while {stage}. Remove print statements inside loops and do not write large files."
        )
    else:
        return None
    return _failure(kind=kind, message=message, traceback=_student_traceback(error, path))


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    item: BaseException | None = error
    while item is not None and item not in chain and len(chain) < 10:
        chain.append(item)
        item = item.__cause__ or item.__context__
    return chain


def _student_traceback(error: BaseException, path: Path) -> str | None:
    """Frames of ``error`` in the student's file and the final exception line (None without such frames)."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == str(path)]
    if not frames:
        return None
    lines = ["Traceback (most recent call last):"]
    if len(frames) > _MAX_FRAMES:
        lines.append(f"  ... {len(frames) - _MAX_FRAMES} earlier frames not shown ...")
    for frame in frames[-_MAX_FRAMES:]:
        lines.append(f'  File "{_SHOWN_AS}", line {frame.lineno}, in {_shorten(frame.name, _MAX_NAME)}')
        if frame.line:
            lines.append(f"    {_shorten(frame.line.strip(), _MAX_SOURCE_LINE)}")
    lines.append(_exception_line(error, path))
    return "\n".join(lines)


def _syntax_traceback(error: SyntaxError) -> str:
    lines = [f'  File "{_SHOWN_AS}", line {error.lineno}']
    if error.text:
        text = error.text.rstrip("\n")
        stripped = text.lstrip()
        lines.append(f"    {_shorten(stripped, _MAX_SOURCE_LINE)}")
        if error.offset:
            caret = max(0, error.offset - 1 - (len(text) - len(stripped)))
            lines.append("    " + " " * caret + "^")
    lines.append(f"{type(error).__name__}: {_shorten(str(error.msg), _MAX_EXCEPTION_TEXT)}")
    return "\n".join(lines)


def _exception_line(error: BaseException, path: Path) -> str:
    text = _text(error, path)
    return f"{_type_name(error)}: {text}" if text else _type_name(error)


def _text(error: BaseException, path: Path) -> str:
    try:
        text = str(error)
    except Exception:  # a student's exception class may fail to print itself
        text = "<the exception's message could not be printed>"
    return _shorten(text.replace(str(path), _SHOWN_AS), _MAX_EXCEPTION_TEXT)


# --- reply -------------------------------------------------------------------------------------


def _flush_student_output() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):  # streams the student broke or overfilled spoil only their log
            stream.flush()


def _write_reply(token: str, outcome: Outcome, output_mb: int) -> None:
    """Write the outputs, then the reply, each over whatever its descriptor's file held."""
    if not isinstance(outcome, SandboxFailure):
        meta, outputs = outcome
        try:
            _write_fd(OUTPUTS_FD, outputs)
            body = f'"ok": true, "failure": null, "meta": {meta}'
        except OSError as error:
            if error.errno != errno.EFBIG:
                raise
            outcome = SandboxFailure(
                kind="output_limit",
                message=f"The results of your code ({len(outputs) // 1024 // 1024} MB) are larger than the "
                f"{output_mb} MB output limit. Make your models return outputs of the expected size.",
            )
    if isinstance(outcome, SandboxFailure):
        body = f'"ok": false, "failure": {_dumps(outcome.model_dump(mode="json"))}, "meta": {{}}'
    _write_fd(REPLY_FD, f'{{"token": {_dumps(token)}, {body}}}'.encode())


def _write_fd(fd: int, data: bytes) -> None:
    """Replace the contents of the file open at ``fd`` (opened by the parent, outside the sandbox)."""
    _ftruncate(fd, 0)
    view, offset = memoryview(data), 0
    while offset < len(view):
        offset += _pwrite(fd, view[offset:], offset)
