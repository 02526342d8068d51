"""Cleaning the text that a submission controls (grader.text) and where the trusted side applies it: the sandbox's
reply, the checks' results, the terminal and the report."""

from __future__ import annotations

import re
import time

import pytest
from conftest import pdf_text
from rich.console import Console

from grader.cli import summary
from grader.result import CheckResult, Failure, GradeResult, Item, Series
from grader.sandbox import Limits, SandboxFailure, SandboxReply, run_task
from grader.sandbox.reply import clean_reply
from grader.text import (
    CUT,
    LOG_TAIL_LIMIT,
    MESSAGE_LIMIT,
    META_LIMIT,
    NAME_LIMIT,
    TRACEBACK_LIMIT,
    clean,
    clean_check,
    clean_data,
)
from reports.render import render_pdf

#: Control characters that must never reach a result, a terminal or a report (newline and tab aside).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
ESC = "\x1b[2J\x1b[31m"


@pytest.mark.parametrize(
    "text,expected",
    [
        (ESC + "red\x1b[0m", "red"),
        ("\x1b]0;window title\x07after", "after"),  # OSC ended by BEL
        ("\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"),  # hyperlink, ended by ST
        ("\x1b]unended title", "unended title"),  # only the introducer goes
        ("\x9b31mC1 CSI", "C1 CSI"),
        ("a\x00b\x07c\x7fd\x85e", "abcde"),
        ("two\nlines\tand\r\na tab", "two lines and  a tab"),
        ("bidi \u202eoverride\u202c", "bidi override"),
        ("lone \ud800surrogate", "lone surrogate"),
        ("[/] [bold red]markup stays text[/bold red]", "[/] [bold red]markup stays text[/bold red]"),
        ("ünïcødé ✓ stays", "ünïcødé ✓ stays"),
    ],
)
def test_clean_drops_escapes_and_controls(text, expected):
    assert clean(text, 100) == expected


def test_clean_keeps_lines_and_tabs_only_when_asked():
    text = 'Traceback (most recent call last):\r\n  File "submission.py", line 3\n\tx = 1\x1b[1m\x00\nValueError: no'
    assert clean(text, 1000, lines=True) == (
        'Traceback (most recent call last):\n  File "submission.py", line 3\n\tx = 1\nValueError: no'
    )


def test_clean_cuts_to_the_limit_and_says_so():
    assert clean("x" * 100, 100) == "x" * 100
    cut = clean("x" * 101, 100)
    assert len(cut) == 100 and cut.endswith(CUT)
    assert clean("abc", 1) == "a"


def test_a_cut_traceback_keeps_its_last_line():
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 10_000 + "ValueError: what was raised"
    cut = clean(traceback, 500, lines=True)
    assert len(cut) == 500 and CUT in cut
    assert cut.startswith("Traceback (most recent call last):") and cut.endswith("ValueError: what was raised")


def test_clean_is_fast_and_small_on_megabytes():
    t0 = time.perf_counter()
    for text in ("A" * 1_500_000, "\x1b[" * 750_000, "\x1b]" * 750_000, "\x00" * 1_500_000):
        assert len(clean(text, NAME_LIMIT)) <= NAME_LIMIT
        assert len(clean(text, TRACEBACK_LIMIT, lines=True)) <= TRACEBACK_LIMIT
    assert time.perf_counter() - t0 < 2
    # a text whose start is all escapes is still marked as cut
    assert clean("\x1b[1m" * 1_000_000 + "tail", 50) == CUT


def test_clean_accepts_anything():
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert clean(12.5, 10) == "12.5"
    assert clean(None, 10) == "None"
    assert clean(Unprintable(), 20) == "<Unprintable>"


def test_clean_data_cleans_every_string_and_key():
    data = {ESC + "key": [ESC + "x" * 500, 1, 2.5, None, True, {"inner": "\x07bell"}], 3: ("a", "b")}
    assert clean_data(data, 10) == {"key": ["xxxxxxxxx" + CUT, 1, 2.5, None, True, {"inner": "bell"}], 3: ["a", "b"]}
    deep: object = "bottom"
    for _ in range(100):
        deep = [deep]
    assert "bottom" not in str(clean_data(deep))


def test_the_sandboxs_reply_is_cleaned_where_it_is_read():
    """Whatever a child (or student code that forged its reply) put in it: messages, tracebacks, meta, log."""
    failure = SandboxFailure(kind="exception", message=ESC + "m" * 3000, traceback="T\x1b[1m\n" + "t" * 15000)
    reply = clean_reply(SandboxReply(False, {}, {}, failure, ESC + "log\n" * 5000, 1.0))
    assert reply.failure is not None and reply.failure.kind == "exception"
    assert len(reply.failure.message) == MESSAGE_LIMIT and ESC not in reply.failure.message
    assert len(reply.failure.traceback) == TRACEBACK_LIMIT and reply.failure.traceback.startswith("T\nttt")
    assert len(reply.log_tail) <= LOG_TAIL_LIMIT and not CONTROL.search(reply.log_tail)
    meta = {"layers": [{"type": "A" * 1_500_000, "torch": False}, {"type": ESC + "Linear"}], ESC + "k": 1}
    ok = clean_reply(SandboxReply(True, meta, {}, None, "", 1.0))
    assert ok.ok and ok.failure is None
    assert ok.meta == {"layers": [{"type": "A" * (META_LIMIT - 1) + CUT, "torch": False}, {"type": "Linear"}], "k": 1}


@pytest.mark.slow  # waits for a task's timeout
def test_a_long_source_line_in_a_timeout_traceback_does_not_break_the_grader(tmp_path):
    """The parent builds the traceback of a timed-out child from the student's source lines; a line of 100 kB
    once made the trusted SandboxFailure model (max_length) raise instead of reporting the timeout."""
    path = tmp_path / "submission.py"
    path.write_text("while True: pass  # " + "x" * 100_000 + "\n")
    # long enough for the child to import torch and start looping before its stack is dumped
    reply = run_task(path, "load", params={}, inputs={}, limits=Limits(wall_seconds=12), threads=1)
    assert not reply.ok and reply.failure is not None and reply.failure.kind == "timeout", reply.failure
    traceback = reply.failure.traceback
    assert traceback is not None and len(traceback) <= TRACEBACK_LIMIT and "while True: pass  # xxx" in traceback


def test_a_huge_exception_class_name_is_reported_as_the_exception(tmp_path):
    """The child once put the class name whole into its message: over the protocol's length limit, building the
    failure raised inside the child, which then died with exit code 1 and a message about os._exit()."""
    path = tmp_path / "submission.py"
    path.write_text(f'raise type("B" * 1_500_000, (Exception,), {{}})("{ESC}boom\\x00" + "!" * 10_000)\n')
    reply = run_task(path, "load", params={}, inputs={}, limits=Limits(wall_seconds=30), threads=1)
    assert reply.failure is not None and reply.failure.kind == "import_error", reply.failure
    message, traceback = reply.failure.message, reply.failure.traceback or ""
    assert "BBBBBBBB" in message and "boom" in message and len(message) <= MESSAGE_LIMIT
    assert len(traceback) <= TRACEBACK_LIMIT and 'File "submission.py", line 1' in traceback
    assert not CONTROL.search(message + traceback)


def _result(checks: list[CheckResult]) -> GradeResult:
    return GradeResult.model_validate(
        {
            "grader_version": "0", "assignment_id": "a", "assignment_title": "A", "started_at": "2025-01-01T00:00:00Z",
            "finished_at": "2025-01-01T00:00:01Z", "seconds": 1.0, "device": "cpu", "seed": 0, "fast_mode": True,
            "isolation": {"method": "rlimits", "network_isolated": False, "filesystem": "",
                          "limits": {"wall_seconds": 60, "memory_mb": 1024}},
            "datasets": [], "submission": {"filename": f"{ESC}[/]s.py", "sha256": "0" * 64, "size_bytes": 1},
            "checks": [c.model_dump() for c in checks], "score": 0, "max_score": 1,
        }
    )  # fmt: skip


def hostile_check() -> CheckResult:
    """A check result that copied hostile text everywhere (as a check with a bug might)."""
    text = "[/] [bold red]" + ESC + "A" * 100_000
    return CheckResult(
        id="c", title=text, status="failed", score=0, max_score=1, message=text, hint=text,
        items=[Item(id="i", title=text, passed=False, points=0, max_points=1, detail=text)],
        metrics={"layers": [text], text: {"nested": text}}, series=[Series(name=text, y=[1.0], meta={"l": [text]})],
        failure=Failure(kind=text, message=text, traceback=text + "\n" + text),
    )  # fmt: skip


def test_clean_check_bounds_every_text_of_a_check():
    cleaned = clean_check(hostile_check())
    dumped = cleaned.model_dump_json()
    assert len(dumped) < 40_000 and "\\u001b" not in dumped
    assert len(cleaned.message) == MESSAGE_LIMIT and len(cleaned.title) == NAME_LIMIT
    assert cleaned.metrics["layers"][0].startswith("[/] [bold red]AAA")


def test_the_terminal_summary_prints_markup_as_text():
    console = Console(record=True, width=200, force_terminal=True, color_system="standard")
    result = _result([clean_check(hostile_check()).model_copy(update={"message": "[/] and [bold red]x. Next."})])
    console.print(summary(result))  # "[/]" closes nothing: rich raised MarkupError before it was escaped
    text = console.export_text(styles=False)
    assert "[/]s.py" in text and "[/] and [bold red]x." in text
    assert "\x1b[2J" not in console.export_text(styles=True)


def test_the_report_renders_odd_content_quickly_on_few_pages(tmp_path):
    """A stored result as it was written before texts were cleaned, with metrics its fact tables cannot read."""
    deep = hostile_check().model_copy(
        update={"id": "activation_stats", "metrics": {"normal": {"rms": [1.0] * 3, "expected_rms": [0.0] * 3}}}
    )
    fold = hostile_check().model_copy(
        update={
            "id": "fold_batchnorm",
            "message": "The folded model still runs 1 normalization layer(s) (" + "Norm " * 300_000 + ").",
            "metrics": {"max_relative_error": 1.0, "tolerance": "odd", "layers": ["A" * 1_500_000]},
        }
    )
    result = _result([deep, fold])
    t0 = time.perf_counter()
    text, pages = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert time.perf_counter() - t0 < 30 and pages < 20, pages
    words = " ".join(text.split())  # the verdict wraps in its table cell: compare words, not lines
    assert "still runs 1 normalization layer(s) (Norm Norm" in words and not CONTROL.search(text)
