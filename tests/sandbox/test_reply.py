"""The trusted side's validation of what a child leaves in its job folder, on hand-made (malformed) files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from grader.sandbox.outcome import _dumped_traceback, shown_under
from grader.sandbox.protocol import Limits, SandboxFailure
from grader.sandbox.reply import InvalidReply, SandboxReply, clean_reply, read_reply
from grader.text import MESSAGE_LIMIT

TOKEN = "a" * 64
LIMITS = Limits(reply_json_kb=1, output_mb=1)
MARKER = Path("/tmp/labgrader-reply-test-pwned")


def write_reply(job: Path, *, token: str = TOKEN, ok: bool = True, **fields: object) -> None:
    failure = None if ok else {"kind": "exception", "message": "boom", "traceback": None}
    reply = {"token": token, "ok": ok, "meta": {"loss": float("nan")}, "failure": failure, **fields}
    (job / "reply.json").write_text(json.dumps(reply))


def test_no_reply_is_none(tmp_path):
    assert read_reply(tmp_path, TOKEN, LIMITS) is None


def test_valid_reply_and_outputs(tmp_path):
    write_reply(tmp_path)
    safetensors.numpy.save_file({"y": np.arange(6, dtype=np.int64).reshape(2, 3)}, tmp_path / "outputs.safetensors")
    reply, tensors = read_reply(tmp_path, TOKEN, LIMITS)
    assert reply.ok and np.isnan(reply.meta["loss"])
    np.testing.assert_array_equal(tensors["y"], np.arange(6).reshape(2, 3))


def test_failure_reply_ignores_outputs(tmp_path):
    write_reply(tmp_path, ok=False)
    (tmp_path / "outputs.safetensors").write_bytes(b"garbage")
    reply, tensors = read_reply(tmp_path, TOKEN, LIMITS)
    assert reply.failure.kind == "exception" and tensors == {}


@pytest.mark.parametrize(
    "content,reason",
    [
        ("not json", "not in the format"),
        ('{"token": "' + TOKEN + '", "ok": true}', "not in the format"),
        (json.dumps({"token": TOKEN, "ok": True, "meta": {}, "failure": None, "extra": 1}), "not in the format"),
        (json.dumps({"token": TOKEN, "ok": True, "meta": {}, "failure": {"kind": "exit", "message": "x"}}), "format"),
        (json.dumps({"token": TOKEN, "ok": False, "meta": {}, "failure": {"kind": "pwned", "message": "x"}}), "format"),
        (json.dumps({"token": "b" * 64, "ok": True, "meta": {}, "failure": None}), "not written by the grader"),
        ("[" * 2000, "larger than the limit"),
    ],
)
def test_malformed_reply_is_invalid(tmp_path, content, reason):
    (tmp_path / "reply.json").write_text(content)
    with pytest.raises(InvalidReply, match=reason):
        read_reply(tmp_path, TOKEN, LIMITS)


def test_reply_must_be_a_regular_file(tmp_path):
    (tmp_path / "reply.json").symlink_to("/etc/hostname")
    with pytest.raises(InvalidReply, match="symbolic link"):
        read_reply(tmp_path, TOKEN, LIMITS)
    (tmp_path / "reply.json").unlink()
    os.mkfifo(tmp_path / "reply.json")  # reading a FIFO would block forever
    with pytest.raises(InvalidReply, match="not a regular file"):
        read_reply(tmp_path, TOKEN, LIMITS)


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def outputs_of(tensors: dict[str, torch.Tensor]) -> bytes:
    return safetensors.torch.save(tensors)


@pytest.mark.parametrize(
    "data,reason",
    [
        (pickle.dumps(Payload()), "not a valid safetensors file"),
        (outputs_of({"y": torch.zeros(2, dtype=torch.bfloat16)}), "not a valid safetensors file"),
        (outputs_of({"y": torch.zeros(2, dtype=torch.complex64)}), "unsupported dtype"),
        (outputs_of({"bad name!": torch.zeros(2)}), "invalid name"),
        (outputs_of({"y": torch.zeros(300_000)}), "larger than the limit"),
        (None, "missing"),
    ],
)
def test_bad_outputs_are_invalid(tmp_path, data, reason):
    MARKER.unlink(missing_ok=True)
    write_reply(tmp_path)
    if data is not None:
        (tmp_path / "outputs.safetensors").write_bytes(data)
    with pytest.raises(InvalidReply, match=reason):
        read_reply(tmp_path, TOKEN, LIMITS)
    assert not MARKER.exists()


def test_tracebacks_from_arbitrary_logs_never_fail():
    source = ["import ctypes", "ctypes.string_at(0)"]
    assert _dumped_traceback("", "x", source) is None
    assert _dumped_traceback('Thread 0x1\n  File "/etc/passwd", line 1 in x\n', "x", source) is None
    log = 'Current thread 0x7f (most recent call first):\n  File "/job/submission.py", line 99 in <module>\n'
    assert _dumped_traceback(log, "last", source).splitlines() == [
        "Traceback (most recent call last):",
        '  File "submission.py", line 99, in <module>',
        "last",
    ]
    log = 'Thread 0x1\n  File "/job/submission.py", line 2 in f\n  File "/job/submission.py", line 1 in <module>\n'
    assert _dumped_traceback(log, "last", source).splitlines()[1:4] == [
        '  File "submission.py", line 1, in <module>',
        "    import ctypes",
        '  File "submission.py", line 2, in f',
    ]


def test_the_students_file_name_replaces_the_sandboxs_and_is_cleaned():
    failure = SandboxFailure(
        kind="syntax_error",
        message="Your file has a syntax error on line 3: expected ':'. Fix it so that `python submission.py` runs.",
        traceback="  File \"submission.py\", line 3\n    def f()\nSyntaxError: expected ':'\nmy_submission.py stays",
    )
    reply = SandboxReply(False, {}, {}, failure, "", 1.0)
    named = clean_reply(shown_under(reply, "lab3_1_.py")).failure
    assert "`python lab3_1_.py` runs" in named.message
    assert named.traceback.startswith('  File "lab3_1_.py", line 3') and "my_submission.py stays" in named.traceback
    hostile = clean_reply(shown_under(reply, "\x1b[2J" + "x" * 500 + ".py")).failure
    assert "\x1b" not in hostile.message + hostile.traceback
    assert len(hostile.message) <= MESSAGE_LIMIT and "x" * 100 not in hostile.message  # the name is cut too
    assert shown_under(reply, "submission.py") is reply
    assert shown_under(SandboxReply(True, {}, {}, None, "", 1.0), "lab.py").failure is None
