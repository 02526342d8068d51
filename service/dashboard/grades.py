"""The grade table of an assignment: one row per student on its roster, with the submission that counts (the
latest or the best, per the assignment), its points per section and per check, and the filters and sorts the
dashboard offers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

from sqlalchemy import Text, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session, lazyload, load_only
from sqlalchemy.orm.attributes import set_committed_value

from grader.assignment import Assignment as GraderAssignment
from grader.assignment import load_assignment
from grader.catalog import CATALOG
from service.models import Answer, Assignment, Enrollment, ManualGrade, Status, Student, Submission

FILTERS = {
    "": "everyone",
    "failed_check": "a check failed",
    "late": "late",
    "not_submitted": "not submitted",
    "errors": "errors",
}
SORTS = ("name", "student_id", "total", "written", "submissions", "status", "submitted")


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


PENDING = (Status.queued, Status.running)


@dataclass
class Row:
    """A student of the roster: how many submissions they made and whether one waits or runs, the one that counts,
    the one an export takes (`graded`, see graded_submission), their manual grades of the written answers
    ({question id: grade}); on the student page (grade_table with student_pk) every submission, newest first."""

    student: Student
    submissions: list[Submission] = field(default_factory=list)  # the student page's only; empty in the table
    count: int = 0  # submissions of the student
    live: bool = False  # whether the row changes by itself (a submission of the student's waits or runs)
    counted: Submission | None = None
    graded: Submission | None = None
    manual: dict[str, ManualGrade] = field(default_factory=dict)
    manual_max: float = 0.0  # what the assignment's written questions are worth together (0: none)
    answered: set[str] = field(default_factory=set)  # the questions the student submitted an answer to

    @property
    def to_grade(self) -> int:
        """How many submitted written answers wait for a hand grade."""
        return len(self.answered - self.manual.keys())

    @property
    def status(self) -> str:
        return self.counted.status.value if self.counted else "not submitted"

    @property
    def auto_score(self) -> float | None:
        """The automated points: the counted submission's score."""
        return self.counted.score if self.counted else None

    @property
    def manual_points(self) -> float | None:
        """The points of the graded written answers together; None while none is graded."""
        return sum(g.points for g in self.manual.values()) if self.manual else None

    @property
    def total(self) -> float | None:
        """Automated score of the counted submission + manual points (None while neither exists)."""
        return _add(self.auto_score, self.manual_points)

    @property
    def max_score(self) -> float | None:
        auto = self.counted.max_score if self.counted else None
        return _add(auto, self.manual_max or None)

    @property
    def export_score(self) -> float | None:
        """What the exports write as the grade: the graded submission's score + manual points."""
        return _add(self.graded.score if self.graded else None, self.manual_points)

    @property
    def late(self) -> bool:
        return bool(self.counted and self.counted.late)

    @property
    def fast(self) -> bool:
        """Whether the counted submission was graded with the fast budgets (not a real grade)."""
        return bool(self.counted and self.counted.fast)

    def check(self, check_id: str) -> dict | None:
        scores = (self.counted.check_scores or {}) if self.counted else {}
        return scores.get(check_id)

    def section(self, section_id: str) -> dict | None:
        """{title, score, max_score} of the counted submission; None before grading or when it was graded before
        sections were stored (revision 0006)."""
        scores = (self.counted.section_scores or {}) if self.counted else {}
        return scores.get(section_id)

    def section_cells(self, sections: tuple[Column, ...]) -> list[tuple[str, str]]:
        """(section id, points shown) per section column: the grade table's cells, made here in one pass (a
        template's lookups per cell cost more than the rest of a 500-row page)."""
        scores = (self.counted.section_scores or {}) if self.counted else {}
        return [(s.id, _text((scores.get(s.id) or {}).get("score"))) for s in sections]

    def check_cells(self, columns: tuple[Column, ...]) -> list[tuple[str, str]]:
        """(check status or "", points shown) per check column."""
        scores = (self.counted.check_scores or {}) if self.counted else {}
        out = []
        for c in columns:
            cs = scores.get(c.id)
            out.append(("", "") if cs is None else (cs.get("status") or "", _text(cs.get("score"))))
        return out

    @property
    def failed_check(self) -> bool:
        scores = (self.counted.check_scores or {}) if self.counted else {}
        return any(c.get("status") in ("failed", "error") for c in scores.values())

    @property
    def errors(self) -> bool:
        scores = (self.counted.check_scores or {}) if self.counted else {}
        return self.status == "failed" or any(c.get("status") == "error" for c in scores.values())


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


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


def has_grade(sub: Submission) -> bool:
    """Whether the submission holds a grade: graded (done), or queued/running again for a regrade with the score
    of its previous grading still on record. A failed grading holds none."""
    return sub.score is not None and (sub.status == Status.done or sub.status in PENDING)


def graded_submission(subs: list[Submission], counting: str) -> Submission | None:
    """The submission an export takes: among those that hold a grade (has_grade), the latest, or with counting
    'best' the best one. So a student whose latest submission is queued, running or failed keeps the grade of the
    latest graded one; None when no submission of theirs was ever graded."""
    graded = [s for s in subs if has_grade(s)]
    if not graded:
        return None
    if counting == "best":
        return max(graded, key=lambda s: (s.score, s.created_at))
    return max(graded, key=lambda s: s.created_at)


@cache
def _manual_max(config_path: str | None) -> float:
    spec = load_assignment(Path(config_path) if config_path else None)
    return spec.manual_points


def manual_max(assignment: Assignment) -> float:
    """What the written questions of the assignment are worth together (0 without [[questions]])."""
    return _manual_max(assignment.config_path)


# What the table, the overview and the exports read of the counted and exported submissions (any other column
# raises: no query per row); the JSON columns come as text, parsed through _parsed.
WHOLE = (Submission.id, Submission.student_pk, Submission.created_at, Submission.status, Submission.score,
         Submission.assignment_id, Submission.max_score, Submission.late, Submission.fast, Submission.progress,
         Submission.step, Submission.report_path, Submission.generation)  # fmt: skip


@lru_cache(maxsize=20_000)
def _parsed(text: str) -> dict:
    """A JSON column's text parsed once per process: the scores of a graded submission do not change until it is
    graded again (new text), and parsing them was a fifth of a 500-student table. Shared between requests: the
    dashboard only reads them."""
    return json.loads(text)


def _json(value: str | dict | None) -> dict | None:
    return _parsed(value) if isinstance(value, str) else value  # a driver may hand over the decoded value


def grade_table(
    session: Session, assignment: Assignment, student_pk: int | None = None, student_pks: Iterable[int] | None = None
) -> list[Row]:
    """The roster's rows (or one student's, or some students'), in four queries whatever their number: students;
    the counted and exported submissions as whole objects, picked in SQL (_picked: with each student's count of
    submissions and whether one waits or runs); the manual grades; and which questions each student answered (only
    for an assignment with written questions). For one student (`student_pk`, the student page) every submission
    is loaded, and picked by counted_submission and graded_submission."""
    query = (
        select(Student)
        .join(Enrollment, Enrollment.student_pk == Student.id)
        .where(Enrollment.assignment_id == assignment.id)
    )
    if student_pk is not None:
        query = query.where(Student.id == student_pk)
    if student_pks is not None:
        query = query.where(Student.id.in_(list(student_pks)))
    one = student_pk is not None
    rows = {s.id: Row(s, manual_max=manual_max(assignment)) for s in session.scalars(query)}
    if not rows:
        return []
    some = list(rows) if one or student_pks is not None else None  # else the whole roster: no IN list
    if one:
        row = rows[student_pk]
        query = select(Submission).where(Submission.assignment_id == assignment.id, Submission.student_pk == student_pk)
        row.submissions = sorted(session.scalars(query.options(lazyload(Submission.student))),
                                 key=lambda s: s.created_at, reverse=True)  # fmt: skip
        row.count, row.live = len(row.submissions), any(s.status in PENDING for s in row.submissions)
        row.counted = counted_submission(row.submissions, assignment.counting)
        row.graded = graded_submission(row.submissions, assignment.counting)
    else:
        _picked(session, assignment, rows, some)
    grades = select(ManualGrade).where(ManualGrade.assignment_id == assignment.id)
    if some is not None:
        grades = grades.where(ManualGrade.student_pk.in_(some))
    for g in session.scalars(grades):
        if g.student_pk in rows:
            rows[g.student_pk].manual[g.question_id] = g
    if manual_max(assignment):
        answered = select(Answer.student_pk, Answer.question_id).where(
            Answer.assignment_id == assignment.id, Answer.text.is_not(None))  # fmt: skip
        if some is not None:
            answered = answered.where(Answer.student_pk.in_(some))
        for pk, question_id in session.execute(answered):
            if pk in rows:
                rows[pk].answered.add(question_id)
    return list(rows.values())


def _picked(session: Session, assignment: Assignment, rows: dict[int, Row], some: list[int] | None) -> None:
    """Fills count, live, counted and graded of the rows in one query: window functions over each student's
    submissions rank them as counted_submission and graded_submission would pick them (latest; best graded, else
    latest; latest or best holding a grade; the best ones only with counting 'best'), and only the picked ones come
    back, as whole objects (WHOLE)."""
    holds = and_(Submission.score.is_not(None), Submission.status.in_((Status.done, *PENDING)))  # has_grade
    done = and_(Submission.score.is_not(None), Submission.status == Status.done)
    by_student = Submission.student_pk

    def rank(*order):
        return func.row_number().over(partition_by=by_student, order_by=order)

    newest = Submission.created_at.desc()
    best = assignment.counting == "best"
    where = [Submission.assignment_id == assignment.id]
    if some is not None:
        where.append(Submission.student_pk.in_(some))
    ranks = select(
        Submission.id.label("id"),
        func.count().over(partition_by=by_student).label("n"),
        func.max(case((Submission.status.in_(PENDING), 1), else_=0)).over(partition_by=by_student).label("live"),
        (func.max(case((done, 1), else_=0)).over(partition_by=by_student) if best else literal(0)).label("any_done"),
        case((done, 1), else_=0).label("done"),
        case((holds, 1), else_=0).label("holds"),
        rank(newest).label("latest"),
        (rank(case((done, 0), else_=1), Submission.score.desc(), newest) if best else literal(0)).label("best_done"),
        (rank(case((holds, 0), else_=1), Submission.score.desc(), newest) if best
         else rank(case((holds, 0), else_=1), newest)).label("graded"),
    ).where(*where).subquery()  # fmt: skip
    query = (
        select(Submission, cast(Submission.check_scores, Text), cast(Submission.section_scores, Text), ranks.c.n,
               ranks.c.live, ranks.c.any_done, ranks.c.done, ranks.c.holds, ranks.c.latest, ranks.c.best_done,
               ranks.c.graded)
        .join(ranks, ranks.c.id == Submission.id)
        .where(or_(ranks.c.latest == 1, ranks.c.graded == 1, and_(ranks.c.best_done == 1, ranks.c.done == 1)))
        .options(lazyload(Submission.student), load_only(*WHOLE, raiseload=True))
    )  # fmt: skip
    for sub, checks, sections, n, live, any_done, is_done, holds_grade, latest, best_done, graded in session.execute(
        query
    ):
        row = rows.get(sub.student_pk)
        if row is None:
            continue
        set_committed_value(sub, "check_scores", _json(checks))
        set_committed_value(sub, "section_scores", _json(sections))
        row.count, row.live = n, bool(live)
        if best and any_done:
            if best_done == 1 and is_done:
                row.counted = sub
        elif latest == 1:
            row.counted = sub
        if graded == 1 and holds_grade:
            row.graded = sub


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
        "written": lambda r: r.manual_points,
        "submissions": lambda r: r.count,
        "status": lambda r: r.status,
        "submitted": lambda r: r.counted.created_at if r.counted else None,
    }
    key = keys.get(sort, keys["name"])
    present = sorted((r for r in rows if key(r) is not None), key=key, reverse=desc)
    return present + [r for r in rows if key(r) is None]


def last_submitted(rows: list[Row]) -> datetime | None:
    times = [r.counted.created_at for r in rows if r.counted]
    return max(times) if times else None
