"""The grade table as CSV (labgrader's own columns, or Moodle's grade import) and every counted report as a zip."""

from __future__ import annotations

import csv
import io
import re
import zipfile

from service.dashboard.grades import Column, Row
from service.models import Assignment, Status
from service.storage import Storage

FORMATS = {"generic": "all columns", "moodle": "Moodle grade import"}


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def generic_csv(
    assignment: Assignment, rows: list[Row], columns: tuple[Column, ...], sections: tuple[Column, ...] = ()
) -> str:
    """One row per student: identity, the counted submission, its total, points per section (named by the
    section's id; empty for a submission graded before sections were stored) and points per check."""
    out = io.StringIO()
    w = csv.writer(out)
    fixed = ["student_id", "name", "email", "status", "late", "submissions", "submitted_at", "submission_id",
             "score", "max_score"]  # fmt: skip
    taken = {*fixed, *(c.id for c in columns)}  # a section named like a check (or a column) gets a prefix
    w.writerow([*fixed, *(s.id if s.id not in taken else f"section_{s.id}" for s in sections),
                *(c.id for c in columns)])  # fmt: skip
    for r in rows:
        sub = r.counted
        parts = [_points((r.section(s.id) or {}).get("score")) for s in sections]
        checks = [_points((r.check(c.id) or {}).get("score")) for c in columns]
        w.writerow([
            r.student.student_id, r.student.name, r.student.email or "", r.status, "yes" if r.late else "no",
            len(r.submissions), sub.created_at.isoformat() if sub else "", sub.id if sub else "",
            _points(r.total), _points(sub.max_score if sub else None), *parts, *checks,
        ])  # fmt: skip
    return out.getvalue()


def moodle_csv(assignment: Assignment, rows: list[Row]) -> str:
    """Moodle's "Import grades > CSV file": map "ID number" to the user's ID number, the assignment column to the
    grade item. Students without a graded submission are left out (an empty cell would clear a grade)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["ID number", "Email address", "Full name", assignment.title])
    for r in rows:
        if r.counted is not None and r.counted.status == Status.done and r.total is not None:
            w.writerow([r.student.student_id, r.student.email or "", r.student.name, _points(r.total)])
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
