"""The grade table as CSV (labgrader's own columns, Moodle's grade import, Canvas's gradebook) and every counted
report as a zip.

Which grade an export writes, for every student of the roster (no row is ever left out):
- the automated part is the score of the student's *graded* submission (grades.graded_submission): the latest one
  that holds a grade (the best with counting 'best'). A newer submission that is still queued or running, or whose
  grading failed, does not replace it; the generic CSV flags it (`pending` yes/no and the latest `status`);
- the written part is the sum of the manual grades of the written answers (none graded: nothing added);
- a student with neither a graded submission nor a manual grade gets an empty grade cell (the grade table says how
  many, next to the export links);
- a grade from the fast budgets (Submission.fast) is not a real grade: the generic CSV has a `fast` column, and the
  Moodle and Canvas exports refuse (FastGrades, answered 409 with the students' names) until those submissions are
  regraded with the real budgets, so that no fast-mode number reaches a gradebook.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile

from grader.assignment import QuestionConfig
from service.dashboard.grades import Column, Row
from service.models import Assignment, Status
from service.storage import Storage

FORMATS = {"generic": "all columns", "moodle": "Moodle grade import", "canvas": "Canvas gradebook import"}


class FastGrades(Exception):
    """A gradebook export would carry grades of the fast budgets; the message names the students."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        names = ", ".join(f"{r.student.name} ({r.student.student_id})" for r in rows[:10])
        more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
        super().__init__(f"{len(rows)} student{'s are' if len(rows) != 1 else ' is'} graded with the fast budgets "
                         f"(not a real grade): {names}{more}. Regrade them with a worker on the real budgets, then "
                         "export again; the generic CSV marks them in its fast column.")  # fmt: skip


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def export_max(rows_max: float | None, manual_max: float) -> float | None:
    return None if rows_max is None and not manual_max else (rows_max or 0.0) + manual_max


def generic_csv(
    assignment: Assignment,
    rows: list[Row],
    columns: tuple[Column, ...],
    sections: tuple[Column, ...] = (),
    questions: tuple[QuestionConfig, ...] = (),
) -> str:
    """One row per student of the roster: identity; `status` of the counted (latest or best) submission and
    `pending` (something of theirs still queued or running); then the graded submission the export takes (see the
    module's rule): its time, id, `late` and `fast`; `score` (automated + written), `auto_score`, `written` (the
    manual points, empty while none is graded), `max_score` (both parts); points per section (named by the
    section's id; empty for a submission graded before sections were stored), per check, and per written question
    (`q_<id>`, empty while ungraded)."""
    out = io.StringIO()
    w = csv.writer(out)
    fixed = ["student_id", "name", "email", "status", "pending", "fast", "late", "submissions", "submitted_at",
             "submission_id", "score", "auto_score", "written", "max_score"]  # fmt: skip
    taken = {*fixed, *(c.id for c in columns)}  # a section named like a check (or a column) gets a prefix
    w.writerow([*fixed, *(s.id if s.id not in taken else f"section_{s.id}" for s in sections),
                *(c.id for c in columns), *(f"q_{q.id}" for q in questions)])  # fmt: skip
    for r in rows:
        sub = r.graded
        section_scores = (sub.section_scores or {}) if sub else {}
        check_scores = (sub.check_scores or {}) if sub else {}
        parts = [_points((section_scores.get(s.id) or {}).get("score")) for s in sections]
        checks = [_points((check_scores.get(c.id) or {}).get("score")) for c in columns]
        manual = [_points(g.points if (g := r.manual.get(q.id)) else None) for q in questions]
        w.writerow([
            r.student.student_id, r.student.name, r.student.email or "", r.status, _yes(r.live),
            _yes(bool(sub and sub.fast)), _yes(bool(sub and sub.late)), r.count,
            sub.created_at.isoformat() if sub else "", sub.id if sub else "", _points(r.export_score),
            _points(sub.score if sub else None), _points(r.manual_points),
            _points(export_max(sub.max_score if sub else None, r.manual_max)), *parts, *checks, *manual,
        ])  # fmt: skip
    return out.getvalue()


def _refuse_fast(rows: list[Row]) -> None:
    fast = [r for r in rows if r.graded is not None and r.graded.fast]
    if fast:
        raise FastGrades(fast)


def moodle_csv(assignment: Assignment, rows: list[Row]) -> str:
    """Moodle's "Import grades > CSV file": map "ID number" to the user's ID number, the assignment column to the
    grade item. Every student of the roster has a row, with the grade of the module's rule (automated + written;
    empty when there is none). Raises FastGrades when a grade comes from the fast budgets."""
    _refuse_fast(rows)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["ID number", "Email address", "Full name", assignment.title])
    for r in rows:
        w.writerow([r.student.student_id, r.student.email or "", r.student.name, _points(r.export_score)])
    return out.getvalue()


def canvas_csv(assignment: Assignment, rows: list[Row], points_possible: float) -> str:
    """Canvas's gradebook import (Grades > Import): the header Student, ID, SIS User ID, SIS Login ID, Section and
    one column for the assignment, named "<title> (<labgrader's id>)"; a "Points Possible" row; one row per student
    of the roster, matched by SIS User ID (labgrader's student id; Canvas's own ID and the login stay empty). The
    grade follows the module's rule (automated + written; empty when there is none). Raises FastGrades when a
    grade comes from the fast budgets."""
    _refuse_fast(rows)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{assignment.title} ({assignment.id})"])
    w.writerow(["Points Possible", "", "", "", "", _points(points_possible)])
    for r in rows:
        w.writerow([r.student.name, "", r.student.student_id, "", "", _points(r.export_score)])
    return out.getvalue()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "student"


def reports_zip(storage: Storage, rows: list[Row]) -> bytes:
    """The counted report of every graded student, named STUDENTID_Name.pdf, as one zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        for r in rows:
            sub = r.counted
            if sub is None or sub.status != Status.done or not sub.report_path:
                continue
            path = storage.path(sub.report_path)
            if path.exists():
                z.write(path, f"{_safe(r.student.student_id)}_{_safe(r.student.name)}.pdf")
    return buffer.getvalue()
