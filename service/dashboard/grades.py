"""The grade table of an assignment: one row per student on its roster, with the submission that counts (the
latest or the best, per the assignment), its points per section and per check, and the filters and sorts the
dashboard offers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import Assignment as GraderAssignment
from grader.assignment import load_assignment
from grader.catalog import CATALOG
from service.models import Assignment, Enrollment, Status, Student, Submission

FILTERS = {
    "": "everyone",
    "failed_check": "a check failed",
    "late": "late",
    "not_submitted": "not submitted",
    "errors": "errors",
}
SORTS = ("name", "student_id", "total", "submissions", "status", "submitted")


@dataclass(frozen=True)
class Column:
    id: str
    title: str
    max_points: float


@cache
def _columns(config_path: str | None) -> tuple[Column, ...]:
    spec = load_assignment(Path(config_path) if config_path else None)
    return tuple(Column(cid, title, spec.max_points(cid)) for cid, title in CATALOG if spec.max_points(cid) > 0)


def check_columns(assignment: Assignment) -> tuple[Column, ...]:
    """The scored checks of the assignment's rubric, in report order."""
    return _columns(assignment.config_path)


def _member_points(spec: GraderAssignment, member: str) -> float:
    check_id, _, item_id = member.partition(".")
    return float(spec.points.get(check_id, {}).get(item_id, 0.0)) if item_id else spec.max_points(check_id)


@cache
def _sections(config_path: str | None) -> tuple[Column, ...]:
    spec = load_assignment(Path(config_path) if config_path else None)
    return tuple(
        Column(s.id, s.title, s.points if s.points is not None else sum(_member_points(spec, m) for m in s.members))
        for s in spec.sections
    )


def section_columns(assignment: Assignment) -> tuple[Column, ...]:
    """The sections of the assignment file ([[sections]]: the lab's parts), in report order; none without."""
    return _sections(assignment.config_path)


@dataclass
class Row:
    student: Student
    submissions: list[Submission] = field(default_factory=list)
    counted: Submission | None = None

    @property
    def status(self) -> str:
        return self.counted.status.value if self.counted else "not submitted"

    @property
    def live(self) -> bool:
        """Whether the row changes by itself (something of the student's waits or runs)."""
        return any(s.status in (Status.queued, Status.running) for s in self.submissions)

    @property
    def total(self) -> float | None:
        return self.counted.score if self.counted else None

    @property
    def late(self) -> bool:
        return bool(self.counted and self.counted.late)

    def check(self, check_id: str) -> dict | None:
        scores = (self.counted.check_scores or {}) if self.counted else {}
        return scores.get(check_id)

    def section(self, section_id: str) -> dict | None:
        """{title, score, max_score} of the counted submission; None before grading or when it was graded before
        sections were stored (revision 0006)."""
        scores = (self.counted.section_scores or {}) if self.counted else {}
        return scores.get(section_id)

    @property
    def failed_check(self) -> bool:
        scores = (self.counted.check_scores or {}) if self.counted else {}
        return any(c.get("status") in ("failed", "error") for c in scores.values())

    @property
    def errors(self) -> bool:
        scores = (self.counted.check_scores or {}) if self.counted else {}
        return self.status == "failed" or any(c.get("status") == "error" for c in scores.values())


def counted_submission(subs: list[Submission], counting: str) -> Submission | None:
    """The latest submission, or with counting 'best' the best graded one (the latest while none is graded)."""
    if not subs:
        return None
    latest = max(subs, key=lambda s: s.created_at)
    if counting == "best":
        graded = [s for s in subs if s.status == Status.done and s.score is not None]
        if graded:
            return max(graded, key=lambda s: (s.score, s.created_at))
    return latest


def grade_table(session: Session, assignment: Assignment, student_pk: int | None = None) -> list[Row]:
    query = (
        select(Student)
        .join(Enrollment, Enrollment.student_pk == Student.id)
        .where(Enrollment.assignment_id == assignment.id)
    )
    if student_pk is not None:
        query = query.where(Student.id == student_pk)
    rows = {s.id: Row(s) for s in session.scalars(query)}
    subs = session.scalars(
        select(Submission).where(Submission.assignment_id == assignment.id, Submission.student_pk.in_(rows))
    )
    for sub in subs:
        rows[sub.student_pk].submissions.append(sub)
    for row in rows.values():
        row.submissions.sort(key=lambda s: s.created_at, reverse=True)
        row.counted = counted_submission(row.submissions, assignment.counting)
    return list(rows.values())


def select_rows(
    rows: list[Row], filter_: str = "", query: str = "", sort: str = "name", desc: bool = False
) -> list[Row]:
    """Filter (see FILTERS), search names and ids (case-insensitive), then sort (missing values last)."""
    tests = {
        "failed_check": lambda r: r.failed_check,
        "late": lambda r: r.late,
        "not_submitted": lambda r: r.counted is None,
        "errors": lambda r: r.errors,
    }
    if filter_ in tests:
        rows = [r for r in rows if tests[filter_](r)]
    if query:
        q = query.casefold()
        rows = [r for r in rows if q in r.student.name.casefold() or q in r.student.student_id.casefold()]
    keys = {
        "name": lambda r: r.student.name.casefold(),
        "student_id": lambda r: r.student.student_id,
        "total": lambda r: r.total,
        "submissions": lambda r: len(r.submissions),
        "status": lambda r: r.status,
        "submitted": lambda r: r.counted.created_at if r.counted else None,
    }
    key = keys.get(sort, keys["name"])
    present = sorted((r for r in rows if key(r) is not None), key=key, reverse=desc)
    return present + [r for r in rows if key(r) is None]


def last_submitted(rows: list[Row]) -> datetime | None:
    times = [r.counted.created_at for r in rows if r.counted]
    return max(times) if times else None
