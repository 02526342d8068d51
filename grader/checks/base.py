"""What every check shares: the unit a check is (CheckSpec: the models it has built, the runs it starts, how it
scores them, what the report says about it and which figures it shows), turning scored items into a
CheckResult, and reporting runs that failed. docs/checks.md ("Adding a check") says how the parts fit."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from grader.assignment import Assignment
from grader.result import CheckResult, Fact, Failure, FigureRef, Item, Series
from grader.session import BadReply, Run, RunSpec, Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckSpec:
    """One check as one unit. The grading builds the union of every check's `models` in the sandbox (once), starts
    every check's `runs` (each trusted task once, however many checks read it), then calls `fn` per check and
    `described` adds `about`, the rows of `facts` and the figures named in `figures` (drawing functions of
    reports.plots, so that no check imports matplotlib) to its result: a stored result renders without any check's
    code."""

    id: str
    title: str
    needs: tuple[str, ...]  # contract names without which the check cannot run
    fn: Callable[[Session, Assignment], CheckResult]  # scores the check from the runs (no student code runs)
    about: str = ""  # why the check exists, for the report
    #: the models to build: (assignment, with MNIST data) -> build requests {key, factory, args, seed, input}
    models: Callable[[Assignment, bool], list[dict]] = lambda a, mnist: []
    runs: tuple[RunSpec, ...] = ()  # the trusted tasks this check starts (other checks may read them too)
    facts: Callable[[CheckResult], list[Fact]] = lambda check: []
    #: (caption, name of a drawing function in reports.plots, its keyword arguments)
    figures: tuple[tuple[str, str, dict], ...] = field(default_factory=tuple)

    def described(self, result: CheckResult) -> CheckResult:
        """The result with what the report says and shows about it; facts that its data cannot give (a check that
        could not run, odd values) are left out, and the result stands either way."""
        try:
            facts = self.facts(result) if result.failure is None else []
        except Exception:  # a grader bug in a table costs the table, not the grade
            log.exception("the facts of check %s could not be computed", self.id)
            facts = []
        return result.model_copy(update={
            "about": self.about, "facts": facts,
            "figures": [FigureRef(caption=c, draw=d, options=o) for c, d, o in self.figures],
        })  # fmt: skip


def number(value: object, digits: int = 3) -> str:
    """A measured number for the report's tables: n/a for None or a non-finite float."""
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}g}"
    return "n/a" if value is None else str(value)


def item(a: Assignment, check_id: str, item_id: str, title: str, passed: bool, detail: str) -> Item:
    max_points = float(a.points.get(check_id, {}).get(item_id, 0.0))
    return Item(
        id=item_id,
        title=title,
        passed=passed,
        points=max_points if passed else 0.0,
        max_points=max_points,
        detail=detail,
    )


def listed(names: list[str], most: int = 10) -> str:
    """Names for a message, comma-separated: the first `most` of them and how many more there are."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def scored(
    check_id: str,
    title: str,
    items: list[Item],
    *,
    passed_message: str,
    hint: str | None = None,
    metrics: dict | None = None,
    series: list[Series] | None = None,
) -> CheckResult:
    """Score = sum of the items' points; a check fails when any scored item fails, and its message lists
    the failed items' details (each says what was measured and what to change)."""
    failed = [i for i in items if not i.passed and i.max_points > 0]
    message = passed_message if not failed else " ".join(i.detail for i in failed)
    return CheckResult(
        id=check_id, title=title, status="failed" if failed else "passed",
        score=sum(i.points for i in items), max_score=sum(i.max_points for i in items),
        message=message, hint=hint if failed else None, items=items,
        metrics=metrics or {}, series=series or [],
    )  # fmt: skip


def not_run(check_id: str, title: str, max_score: float, failure: Failure, what: str) -> CheckResult:
    """The student's code failed before the check could measure anything: zero points and the reason."""
    status = "failed" if failure.kind in ("missing_name", "contract") else "error"
    return CheckResult(
        id=check_id, title=title, status=status, score=0.0, max_score=max_score,
        message=f"{what} could not be run: {failure.message}", failure=failure,
    )  # fmt: skip


def run_failure(run: Run | None, needs: str) -> Failure | None:
    if run is None:
        return Failure(
            kind="missing_name", message=f"Your file does not define {needs}; add it (see docs/students.md)."
        )
    if run.failure is not None:
        f = run.failure
        return Failure(kind=f.kind, message=f.message, traceback=f.traceback)
    return None


def bad_reply_failure(e: BadReply) -> Failure:
    return Failure(
        kind="invalid_reply",
        message=f"The sandbox returned unusable data: {e}. Check that your model "
        "returns finite float logits of the documented shape.",
    )


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy in float64 on the trusted side; inf when the logits are not finite."""
    if not torch.isfinite(logits).all():
        return float("inf")
    return float(F.cross_entropy(logits.double(), labels))


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).double().mean())
