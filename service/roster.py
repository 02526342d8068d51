"""The instructor's roster: a CSV of students in, their tokens out (to hand to each student)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.ids import InvalidAssignmentId, check_assignment_id
from service.models import Assignment, Enrollment, Student
from service.security import new_token, token_hash

REQUIRED = ("student_id", "name")


class RosterError(ValueError):
    """The roster file cannot be imported; the message names the line and what to fix."""


@dataclass
class RosterRow:
    student_id: str
    name: str
    email: str | None


@dataclass
class Issued:
    student_id: str
    name: str
    email: str | None
    token: str | None  # None: the student keeps the token issued earlier
    status: str  # new, kept or reissued


def parse_roster(text: str) -> list[RosterRow]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise RosterError(
            f"The roster has no column {', '.join(missing)}; its first line must name the columns "
            f"student_id,name[,email] (it has: {', '.join(columns) or 'nothing'})."
        )
    rows, seen = [], set()
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        if not row["student_id"] or not row["name"]:
            raise RosterError(f"Line {line} of the roster lacks a student_id or a name.")
        if row["student_id"] in seen:
            raise RosterError(f"Line {line}: student_id {row['student_id']!r} appears twice in the roster.")
        seen.add(row["student_id"])
        rows.append(RosterRow(row["student_id"], row["name"], row.get("email") or None))
    if not rows:
        raise RosterError("The roster lists no students.")
    return rows


def import_roster(session: Session, rows: list[RosterRow], assignment_id: str, reissue: bool = False) -> list[Issued]:
    """Add or update each student, enroll them in the assignment, and issue tokens to the new ones (to every
    one with `reissue`, which invalidates the old tokens)."""
    try:
        check_assignment_id(assignment_id)
    except InvalidAssignmentId as e:
        raise RosterError(str(e)) from None
    if session.get(Assignment, assignment_id) is None:
        known = ", ".join(session.scalars(select(Assignment.id)).all())
        raise RosterError(f"There is no assignment {assignment_id!r} (known: {known}).")
    issued = []
    for row in rows:
        student = session.scalar(select(Student).where(Student.student_id == row.student_id))
        token = None
        if student is None:
            token, state = new_token(), "new"
            student = Student(student_id=row.student_id, name=row.name, email=row.email, token_hash=token_hash(token))
            session.add(student)
            session.flush()
        else:
            student.name, student.email = row.name, row.email
            state = "kept"
            if reissue:
                token, state = new_token(), "reissued"
                student.token_hash = token_hash(token)
        if session.get(Enrollment, (student.id, assignment_id)) is None:
            session.add(Enrollment(student_pk=student.id, assignment_id=assignment_id))
        issued.append(Issued(row.student_id, row.name, row.email, token, state))
    return issued


def tokens_csv(issued: list[Issued]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student_id", "name", "email", "token", "status"])
    for i in issued:
        writer.writerow([i.student_id, i.name, i.email or "", i.token or "", i.status])
    return out.getvalue()
