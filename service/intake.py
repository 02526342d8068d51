"""Accepting a submission: the file is checked (size, type, encoding) and the student's rate and the deadline
are applied before anything is stored; then it is stored, and only then queued."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.ids import RULE, is_assignment_id, shown
from service.models import Assignment, Enrollment, Student, Submission, utcnow
from service.storage import Storage, write_atomic

SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_STEM = 100


@dataclass
class Rejected(Exception):
    """A submission that is not accepted: the HTTP status and a message saying what to do."""

    status_code: int
    detail: str
    retry_after: int | None = None


def too_large(max_bytes: int) -> str:
    """The one answer to an upload over the limit, whether the file or the whole request was found too large."""
    return (f"The file is larger than the limit of {max_bytes:,} bytes for a submission: submit only your Python "
            "source (no data, no weights).")  # fmt: skip


def check_file(filename: str | None, data: bytes, max_bytes: int) -> str:
    """The file's name to keep, or Rejected: not a .py file, too large, empty, not UTF-8 text."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    if not name.endswith(".py"):
        raise Rejected(415, f"'{name or '(no name)'}' is not a Python file: submit your solution as one .py file.")
    if len(data) > max_bytes:
        raise Rejected(413, too_large(max_bytes))
    if not data.strip():
        raise Rejected(422, f"'{name}' is empty: submit the file that defines your models.")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected(422, f"'{name}' is not UTF-8 text (invalid byte at offset {e.start}): save it as UTF-8.") from e
    if b"\x00" in data:
        raise Rejected(422, f"'{name}' contains NUL bytes: it is not a text file. Submit your Python source.")
    return safe_name(name)


def safe_name(name: str) -> str:
    """The student's file name as stored and shown: kept when it matches SAFE_NAME, else made safe, every other
    run of other characters replaced by one "_" ("lab3 (1).py" -> "lab3_1_.py"; accents dropped first: "é" -> "e"),
    cut to SAFE_NAME's length, still ending in .py; "submission.py" when nothing of it is left."""
    if SAFE_NAME.fullmatch(name):
        return name
    stem = name[: -len(".py")] if name.endswith(".py") else name
    stem = "".join(ch for ch in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(ch))
    stem = _UNSAFE.sub("_", stem)
    stem = stem.lstrip(".-")[:MAX_STEM]  # no hidden file, nothing that reads as an option
    candidate = f"{stem}.py"
    if not stem.strip("_") or not SAFE_NAME.fullmatch(candidate):
        return "submission.py"
    return candidate


def find_assignment(session: Session, student: Student, assignment_id: str) -> Assignment:
    if not is_assignment_id(assignment_id):
        raise Rejected(422, f"{shown(assignment_id)} is not a valid assignment id ({RULE}). GET /api/assignments "
                            "lists yours.")  # fmt: skip
    assignment = session.get(Assignment, assignment_id)
    enrolled = assignment is not None and session.get(Enrollment, (student.id, assignment_id)) is not None
    if assignment is None:
        raise Rejected(404, f"There is no assignment '{assignment_id}'. GET /api/assignments lists yours.")
    if not enrolled:
        raise Rejected(403, f"You are not on the roster of '{assignment_id}'. Ask your instructor to add you.")
    return assignment


def check_rate(session: Session, student: Student, assignment_id: str, limit: int, window_seconds: int) -> None:
    """Rejected(429) when the student has `limit` submissions to the assignment within the window. The count holds
    under concurrency: first the student's enrollment row is written (a no-op update), which takes its row lock on
    PostgreSQL and the database's write lock on SQLite until the caller's transaction ends; a concurrent submission
    of the same student and assignment waits there, and counts after this one is committed or rolled back."""
    session.execute(
        update(Enrollment)
        .where(Enrollment.student_pk == student.id, Enrollment.assignment_id == assignment_id)
        .values(assignment_id=Enrollment.assignment_id)
    )
    since = utcnow() - timedelta(seconds=window_seconds)
    recent = select(Submission.created_at).where(
        Submission.student_pk == student.id, Submission.assignment_id == assignment_id, Submission.created_at >= since
    )
    count = session.scalar(select(func.count()).select_from(recent.subquery()))
    if count >= limit:
        oldest = session.scalar(select(func.min(recent.subquery().c.created_at)))
        wait = max(1, int((oldest + timedelta(seconds=window_seconds) - utcnow()).total_seconds()) + 1)
        raise Rejected(
            429,
            f"You have submitted {count} times to '{assignment_id}' in the last {window_seconds // 60} minutes "
            f"(the limit is {limit}). Try again in {wait} seconds; your latest submission is still graded.",
            retry_after=wait,
        )


def store_submission(
    session: Session, storage: Storage, student: Student, assignment: Assignment, filename: str, data: bytes
) -> Submission:
    """Write the file, then the row (status queued); the caller commits, then sends the id to the queue."""
    now = utcnow()
    sub = Submission(
        id=str(uuid.uuid4()),
        student_pk=student.id,
        assignment_id=assignment.id,
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        created_at=now,
        queued_at=now,
        late=assignment.deadline is not None and now > assignment.deadline,
        generation=1,
        attempt=0,
        progress=0.0,
        step="",
    )
    write_atomic(storage.upload_path(sub.id), data)
    session.add(sub)
    session.flush()
    return sub
