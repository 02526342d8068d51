"""What the API returns (pydantic models, also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.models import Status


class Problem(BaseModel):
    detail: str = Field(description="what was wrong and what to do")


class SubmissionLinks(BaseModel):
    self: str
    report: str = Field(description="the PDF report (409 until the submission is done)")
    result: str = Field(description="the result JSON (409 until the submission is done)")


class SubmissionPublic(BaseModel):
    id: str
    assignment: str
    filename: str
    sha256: str
    size_bytes: int
    created_at: datetime
    late: bool = Field(description="submitted after the assignment's deadline (accepted, and flagged)")
    status: Status = Field(description="queued, running, done (graded; the report explains any failure) or failed")
    progress: float = Field(
        description="0..1 of the grading: it never goes down (a grading retried after a lost worker goes on from "
        "where it was; a regrade starts again at 0) and is 1 only once the submission is done (a failed one keeps "
        "where it stopped)"
    )
    step: str = Field(description="what the grading is doing now")
    queue_position: int | None = Field(
        description="place in the queue while queued, counted from 1 (1: graded next, once a grader is free); "
        "null otherwise"
    )
    score: float | None
    max_score: float | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="why grading failed, or why the report is missing")
    summary: str | None = Field(
        default=None,
        description="for a failed grading or one that got no points, one sentence saying why (e.g. a syntax "
        "error in your file, a limit the grader stopped it at, no check passed); null otherwise",
    )
    links: SubmissionLinks


class SubmissionList(BaseModel):
    submissions: list[SubmissionPublic]


class AssignmentPublic(BaseModel):
    id: str
    title: str
    deadline: datetime | None


class AssignmentList(BaseModel):
    assignments: list[AssignmentPublic]


class Health(BaseModel):
    database: bool
    broker: bool


class Regraded(BaseModel):
    queued: int = Field(description="submissions queued for grading again")
