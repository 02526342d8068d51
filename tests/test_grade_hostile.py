"""Hostile submissions graded end to end: the grader survives each, and every failure is a clear message in the
check it concerns (or for the whole file when it cannot even be loaded)."""

from pathlib import Path

import pytest
from bugs import REFERENCE
from conftest import SUBMISSIONS, graded_fast, pdf_text

from grader import grade, load_assignment
from grader.sandbox import cgroups
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


def test_cheating_at_import_changes_nothing(reference_fast, tmp_path):
    result = graded_fast(reference_with("cheater", tmp_path))
    assert [(c.id, c.score) for c in result.checks] == [(c.id, c.score) for c in reference_fast.checks]


def test_replacing_the_loss_inside_the_sandbox_does_not_fake_the_measured_loss(reference_fast, tmp_path):
    result = graded_fast(reference_with("fake_loss", tmp_path))
    ours, ref = result.check("loss_at_init").metrics, reference_fast.check("loss_at_init").metrics
    assert ours["circle_recommended"] == ref["circle_recommended"]
    # training with a zero loss learns nothing, and the trusted side sees it
    assert result.check("dropout").metrics["with_dropout"]["val_error"] > 50


@pytest.mark.parametrize(
    "filename,kind",
    [
        ("syntax_error.py", "syntax_error"),
        ("sys_exit_import.py", "exit"),
        ("os_exit_import.py", "exit"),
        ("import_exception.py", "import_error"),
        ("loop_import.py", BUSY_LOOP),
        ("memory_list.py", "memory"),
        ("print_forever.py", "output_limit"),
        ("fork_bomb.py", None),
        ("segfault.py", "crash"),
    ],
)
def test_file_that_cannot_load_gets_one_clear_reason_everywhere(filename, kind, tmp_path):
    result = grade(HOSTILE / filename, small_limits(), fast=True)
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert "/ 95 points" in text
    failure = result.submission.load_failure
    if kind is None:  # a fork bomb may be contained before import finishes or may load: both are fine
        assert result.checks
        return
    assert failure is not None and failure.kind == kind, failure
    assert result.score == 0 and len(result.checks) == 7
    for check in result.checks:
        assert check.status in ("error", "failed") and failure.message in check.message


def test_infinite_loop_in_one_function_costs_only_its_checks(tmp_path):
    result = grade(HOSTILE / "loop_in_model.py", small_limits(), fast=True)
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert f"What went wrong ({BUSY_LOOP})" in text
    assert result.submission.load_failure is None
    sweep = result.check("sigma_sweep")
    assert sweep.status == "error" and sweep.failure.kind == BUSY_LOOP and "circle_model" in sweep.message
