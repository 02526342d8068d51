"""The database tables (SQLAlchemy 2). The database is the truth; the queue only carries submission ids."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from service.ids import check_assignment_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores none of the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(UTC)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Status(enum.StrEnum):
    queued = "queued"  # stored and sent to the queue (or waiting for the sweep to send it)
    running = "running"  # a worker holds the lease and grades it
    done = "done"  # graded: result and report stored (a broken file is graded too: its report says why)
    failed = "failed"  # the grader could not finish (time limit, grader error); an instructor can regrade


class Outcome(enum.StrEnum):
    running = "running"
    done = "done"
    failed = "failed"
    lost = "lost"  # the worker vanished (its lease ran out); the sweep queued the submission again
    superseded = "superseded"  # a regrade or another attempt took over; its output was discarded


class Instructor(Base):
    __tablename__ = "instructors"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # in every dashboard session's signed cookie; a logout or a password change raises it, ending those sessions
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Assignment(Base):
    __tablename__ = "assignments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    config_path: Mapped[str | None] = mapped_column(Text)  # assignment TOML; None: the grader's built-in lab
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counting: Mapped[str] = mapped_column(String(8), default="latest", server_default="latest")  # or "best"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @validates("id")
    def _slug(self, key: str, value: str) -> str:
        return check_assignment_id(value)  # the last line of defence behind every entry point (service/ids.py)


class Student(Base):
    __tablename__ = "students"
    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[str] = mapped_column(String(100), unique=True)  # the roster's id
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the bearer token
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Enrollment(Base):
    __tablename__ = "enrollments"
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True)


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    late: Mapped[bool] = mapped_column(Boolean, default=False)

    status: Mapped[Status] = mapped_column(Enum(Status, native_enum=False, length=16), default=Status.queued)
    generation: Mapped[int] = mapped_column(Integer, default=1)  # +1 on every regrade
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # the attempt that holds (or held) the lease
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1 of the running grading
    step: Mapped[str] = mapped_column(String(300), default="")  # what the grading does now
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    result_path: Mapped[str | None] = mapped_column(Text)  # relative to the storage folder
    report_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)  # why grading failed, or why the report is missing
    check_scores: Mapped[dict | None] = mapped_column(JSON)  # check id -> {score, max_score, status}
    # section id -> {title, score, max_score} (the assignment's [[sections]]); None: graded before revision 0006
    section_scores: Mapped[dict | None] = mapped_column(JSON)
    # why a failed or 0-point grading got nothing, in one sentence (GET /api/submissions/{id}, the portal)
    summary: Mapped[str | None] = mapped_column(Text)
    fast: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")  # graded with the [fast] budgets

    student: Mapped[Student] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_submissions_student_created", "student_pk", "created_at"),
        Index("ix_submissions_status_queued", "status", "queued_at"),
        Index("ix_submissions_assignment", "assignment_id"),
    )


class Answer(Base):
    """A student's written answer to one question of an assignment: the draft being typed, and the text last
    submitted (what instructors grade). Kept per student and assignment, so a regrade of the code keeps it."""

    __tablename__ = "answers"
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True)
    question_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    draft: Mapped[str] = mapped_column(Text, default="")
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    text: Mapped[str | None] = mapped_column(Text)  # None: never submitted
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)  # submitted after the deadline


class ManualGrade(Base):
    """An instructor's points and comment for one written answer. Kept per student, assignment and question:
    regrading the code leaves it alone."""

    __tablename__ = "manual_grades"
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True)
    question_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    points: Mapped[float] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    grader: Mapped[str] = mapped_column(String(320))  # the instructor's email
    graded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GradingAttempt(Base):
    """One worker's try at one generation of a submission: the audit trail behind "graded exactly once"."""

    __tablename__ = "grading_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[Outcome] = mapped_column(Enum(Outcome, native_enum=False, length=16), default=Outcome.running)
    __table_args__ = (UniqueConstraint("submission_id", "attempt"),)


class LoginAttempts(Base):
    """Instructor logins tried within the current window, per client address and per account (service/login.py).
    Kept in the database so that every API process counts against the same limit."""

    __tablename__ = "login_attempts"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # "address:IP" or "account:<sha256 of email>"
    window_start: Mapped[float] = mapped_column(Float)  # epoch seconds: plain arithmetic on every backend
    attempts: Mapped[int] = mapped_column(Integer)
    __table_args__ = (Index("ix_login_attempts_window_start", "window_start"),)
