"""Hostile submissions graded end to end: the grader survives each, and every failure is a clear message in the
check it concerns (or for the whole file when it cannot even be loaded)."""

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bugs import REFERENCE
from conftest import MAX_POINTS, SUBMISSIONS, graded_fast, pdf_text

import grader.session as session_module
from grader import GradeResult, grade, grading, load_assignment
from grader.checks import CHECKS
from grader.checks.base import CheckSpec, item, scored
from grader.sandbox import cgroups
from reports.cli import main as cli_main
from reports.render import render_pdf

HOSTILE = SUBMISSIONS / "hostile"
#: A busy loop ends at its CPU budget where cgroups count CPU time over the job, at the wall-clock backstop elsewhere.
BUSY_LOOP = "cpu_time" if "cpuacct" in cgroups.host().features else "timeout"


def reference_with(name: str, folder: Path) -> Path:
    """The reference solution with tests/submissions/appended/NAME.py appended to it."""
    path = folder / f"{name}.py"
    path.write_text(REFERENCE.read_text() + "\n\n" + (SUBMISSIONS / "appended" / f"{name}.py").read_text())
    return path


def small_limits():
    a = load_assignment()
    small = {"min_cpu_seconds": 8, "cpu_factor": 1, "min_wall_seconds": 25, "wall_factor": 1, "memory_mb": 3072}
    return a.model_copy(update={"limits": a.limits.model_copy(update=small)})


@pytest.mark.slow  # a grading of its own (10-15 s)
def test_cheating_at_import_changes_nothing(reference_fast, tmp_path):
    result = graded_fast(reference_with("cheater", tmp_path))
    assert [(c.id, c.score) for c in result.checks] == [(c.id, c.score) for c in reference_fast.checks]


@pytest.mark.slow  # a grading of its own (10-15 s)
def test_replacing_the_loss_at_import_does_not_reach_the_training(reference_fast, tmp_path):
    """The student's code runs only in the build job: torch patched at import there changes nothing in the lab's
    tasks, which train the rebuilt models with the grader's own torch in processes of their own."""
    result = graded_fast(reference_with("fake_loss", tmp_path))
    ours, ref = result.check("loss_at_init").metrics, reference_fast.check("loss_at_init").metrics
    assert ours["circle_recommended"] == ref["circle_recommended"]
    assert [(c.id, c.score) for c in result.checks] == [(c.id, c.score) for c in reference_fast.checks]
    # a zero loss would have learnt nothing (validation error near 90%): the models trained as the reference's did
    ours, ref = result.check("dropout").metrics, reference_fast.check("dropout").metrics
    assert ours["with_dropout"]["val_error"] < 50
    assert abs(ours["with_dropout"]["val_error"] - ref["with_dropout"]["val_error"]) < 2


@pytest.mark.parametrize(
    "filename,kind",
    [
        ("syntax_error.py", "syntax_error"),
        ("sys_exit_import.py", "exit"),
        ("os_exit_import.py", "exit"),
        ("import_exception.py", "import_error"),
        pytest.param("loop_import.py", BUSY_LOOP, marks=pytest.mark.slow),  # waits out a CPU budget
        pytest.param("memory_list.py", "memory", marks=pytest.mark.slow),
        ("print_forever.py", "output_limit"),
        ("fork_bomb.py", None),
        ("segfault.py", "crash"),
    ],
)
def test_file_that_cannot_load_gets_one_clear_reason_everywhere(filename, kind, tmp_path):
    result = grade(HOSTILE / filename, small_limits(), fast=True)
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert f"/ {MAX_POINTS:g} points" in text
    failure = result.submission.load_failure
    if kind is None:  # a fork bomb may be contained before import finishes or may load: both are fine
        assert result.checks
        return
    assert failure is not None and failure.kind == kind, failure
    assert result.score == 0 and len(result.checks) == len(CHECKS)
    for check in result.checks:
        assert check.status in ("error", "failed") and failure.message in check.message


def test_infinite_loop_in_one_function_costs_only_its_checks(tmp_path):
    result = grade(HOSTILE / "loop_in_model.py", small_limits(), fast=True)
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert f"What went wrong ({BUSY_LOOP.replace('_', ' ')})" in text
    assert result.submission.load_failure is None
    sweep = result.check("sigma_sweep")
    assert sweep.status == "error" and sweep.failure.kind == BUSY_LOOP and "circle_model" in sweep.message


# --- text and data that the trusted side once crashed on (issue 15) ------------------------------------------

#: Control characters that must not reach a result or a report (newline and tab aside).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
GRADER = Path(sys.executable).with_name("grader")


def strings(data: object) -> list[str]:
    """Every string in JSON data, dict keys included."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [*data.keys(), *(s for v in data.values() for s in strings(v))]
    if isinstance(data, list):
        return [s for v in data for s in strings(v)]
    return []


def graded_by_cli(name: str, out: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`grader grade HOSTILE/NAME.py --out OUT --fast` as a command (rich prints the summary), checked for what
    every grading must leave: exit 0, result.json, results.json and report.pdf, all small and clean."""
    t0 = time.monotonic()
    done = subprocess.run(
        [str(GRADER), "grade", str(HOSTILE / f"{name}.py"), "--out", str(out), "--fast", "--quiet"],
        capture_output=True, text=True, errors="replace", timeout=600,
    )  # fmt: skip
    print(f"{name}: exit {done.returncode} in {time.monotonic() - t0:.1f} s")
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "\x1b" not in shown and "Traceback" not in shown, shown
    raw = (out / "result.json").read_bytes()
    assert len(raw) < 1_000_000, len(raw)
    result = json.loads(raw)
    for path in (out / "result.json", out / "results.json"):
        bad = [s[:80] for s in strings(json.loads(path.read_bytes())) if CONTROL.search(s)]
        assert not bad, (path.name, bad)
    text, pages = pdf_text(out / "report.pdf")
    assert pages < 30 and not CONTROL.search(text), pages
    return done, result


def checks_of(result: dict) -> dict[str, dict]:
    return {c["id"]: c for c in result["checks"]}


def assert_full_marks(result: dict, *check_ids: str) -> None:
    checks = checks_of(result)
    for check_id in check_ids:
        assert checks[check_id]["score"] == checks[check_id]["max_score"] > 0, checks[check_id]["message"]


@pytest.mark.slow  # a whole grading through the command (20-40 s)
def test_a_layer_without_inputs_costs_only_the_deep_net_check(tmp_path):
    """deep_model's Linear(0, 100) made expected_variance divide by zero in the grading process: no result."""
    _, result = graded_by_cli("zero_fan_in", tmp_path)
    assert_full_marks(result, "loss_at_init", "sigma_sweep")
    deep = checks_of(result)["activation_stats"]
    assert deep["status"] == "failed" and deep["score"] == 0
    for part in deep["items"]:
        assert "has a layer with 0 inputs" in part["detail"] and "Linear(0, 100)" in part["detail"], part


@pytest.mark.slow  # a whole grading through the command (20-40 s)
def test_rich_markup_in_an_exception_is_printed_as_text(tmp_path):
    """An exception message "[/]" made rich raise MarkupError after result.json and before report.pdf."""
    done, result = graded_by_cli("markup_message", tmp_path)
    assert_full_marks(result, "loss_at_init", "sigma_sweep")
    deep = checks_of(result)["activation_stats"]
    assert deep["status"] == "error" and "[/] [bold red]FULL MARKS[/bold red]" in deep["message"]
    table = re.sub(r"[\s│]+", " ", done.stdout)  # the table's rows, unwrapped
    assert "Your code raised ValueError: [/] [bold red]FULL MARKS[/bold red]" in table


@pytest.mark.slow  # a whole grading through the command (20-40 s)
def test_escape_sequences_in_messages_and_class_names_reach_nothing(tmp_path):
    """ANSI escapes in an exception's message and class name and in a module's class name."""
    _, result = graded_by_cli("ansi_escape", tmp_path)
    assert_full_marks(result, "loss_at_init", "sigma_sweep")
    checks = checks_of(result)
    deep = checks["activation_stats"]["message"]
    assert "Your code raised Error: all checks passed " in deep and "pwned" not in deep, deep
    # module class names never leave the sandbox now: a graph names torch operations only
    assert "\\u001b" not in json.dumps(result)  # no ESC character anywhere (json.dumps writes it as \\u001b)


@pytest.mark.slow  # a whole grading through the command (20-40 s)
def test_megabyte_class_names_are_cut_before_the_result_and_the_report(tmp_path):
    """A module class name of 1.5 MB went whole into the result (and the report, three times over: thousands of
    pages when it wraps), and an exception class name of 1.5 MB crashed the child while it reported the
    exception."""
    t0 = time.monotonic()
    _, result = graded_by_cli("huge_class_name", tmp_path)
    assert time.monotonic() - t0 < 120
    assert_full_marks(result, "loss_at_init", "sigma_sweep")
    checks = checks_of(result)
    deep = checks["activation_stats"]
    assert deep["failure"]["kind"] == "exception" and "Your code raised BBBBBBBB" in deep["message"], deep
    fold = checks["fold_batchnorm"]
    # module class names never leave the sandbox now: the folded model is read as torch operations
    assert "AAAAAAAA" not in json.dumps(result) and len(fold["message"]) < 1000, fold["message"]


def test_an_exception_while_scoring_a_check_costs_only_that_check(tmp_path, monkeypatch, caplog, capsys):
    """Whatever a check's scoring raises becomes that check's error, with a short clean message; the other checks
    keep their scores, the traceback goes to the log, and the command still writes every file."""

    def broken(session, a):
        raise ZeroDivisionError("\x1b[31m[/] division by zero " + "x" * 10_000)

    def fine(session, a):
        items = [item(a, "sigma_sweep", k, k, True, f"{k} is fine.") for k in ("small", "good", "big")]
        return scored("sigma_sweep", "Sweep", items, passed_message="All fine.")

    monkeypatch.setattr(grading, "CHECKS", [
        CheckSpec("activation_stats", "Deep net", (), broken), CheckSpec("sigma_sweep", "Sweep", (), fine),
    ])  # fmt: skip
    submission = tmp_path / "empty.py"
    submission.write_text("X = 1\n")
    with caplog.at_level(logging.ERROR, logger="grader.grading"):
        assert cli_main(["grade", str(submission), "--out", str(tmp_path / "out"), "--fast", "--quiet"]) == 0
    assert "The grader could not score this: ZeroDivisionError ([/] division by zero" in capsys.readouterr().out
    result = GradeResult.model_validate_json((tmp_path / "out" / "result.json").read_bytes())
    broken_check, fine_check = result.checks
    deep_points, sweep_points = (load_assignment().max_points(c) for c in ("activation_stats", "sigma_sweep"))
    assert (broken_check.status, broken_check.score, broken_check.max_score) == ("error", 0, deep_points)
    assert broken_check.message.startswith("The grader could not score this: ZeroDivisionError ([/] division by")
    assert len(broken_check.message) < 600 and not CONTROL.search(broken_check.message)
    assert "Traceback" not in broken_check.model_dump_json()
    assert (fine_check.status, fine_check.score) == ("passed", sweep_points) and result.score == sweep_points
    assert "Traceback" in caplog.text and "in broken" in caplog.text
    assert (tmp_path / "out" / "results.json").is_file() and (tmp_path / "out" / "report.pdf").is_file()


def test_a_sandbox_job_that_raises_costs_only_its_check(tmp_path, monkeypatch):
    """A grader bug inside a sandbox job (run_task raising) reaches the check that reads the run, as its error, and
    the list of runs leaves the job out instead of raising it again after every check was scored."""

    def failing_run_task(*args, **kwargs):
        raise RuntimeError("the sandbox broke")

    submission = tmp_path / "fold_only.py"
    submission.write_text("def fold_batchnorm(model):\n    return model\n")
    monkeypatch.setattr(session_module, "run_task", failing_run_task)
    result = grade(submission, fast=True)
    fold = result.check("fold_batchnorm")
    assert fold.status == "error" and fold.score == 0
    assert fold.message.startswith("The grader could not score this: RuntimeError (the sandbox broke)")
    assert [r.name for r in result.runs] == ["build"]
