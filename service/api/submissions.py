"""Student routes: submit a file, follow its grading, download the report and the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, HTTPException, Query, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.api.deps import CurrentStudent, SessionDep, StateDep
from service.api.schemas import (
    AssignmentList,
    AssignmentPublic,
    Problem,
    SubmissionLinks,
    SubmissionList,
    SubmissionPublic,
)
from service.ids import PATTERN, RULE, is_assignment_id, shown
from service.intake import Rejected, check_file, check_rate, find_assignment, store_submission
from service.models import Assignment, Enrollment, Status, Student, Submission
from service.queue import send

router = APIRouter(
    prefix="/api",
    tags=["students"],
    responses={401: {"model": Problem, "description": "missing or unknown token"}},
)
SLUG = {"pattern": PATTERN}  # documented in the schema; checked in the route, with a message saying what to do
NOT_FOUND = "No submission of yours has this id. GET /api/submissions lists yours."


def public(session: Session, sub: Submission) -> SubmissionPublic:
    position = None
    if sub.status == Status.queued:  # 1 is next: the submissions queued before this one, plus one
        position = 1 + session.scalar(
            select(func.count()).where(Submission.status == Status.queued, Submission.queued_at < sub.queued_at)
        )
    base = f"/api/submissions/{sub.id}"
    return SubmissionPublic(
        id=sub.id, assignment=sub.assignment_id, filename=sub.filename, sha256=sub.sha256, size_bytes=sub.size_bytes,
        created_at=sub.created_at, late=sub.late, status=sub.status, progress=sub.progress, step=sub.step,
        queue_position=position, score=sub.score, max_score=sub.max_score, started_at=sub.started_at,
        finished_at=sub.finished_at, error=sub.error, summary=sub.summary,
        links=SubmissionLinks(self=base, report=f"{base}/report.pdf", result=f"{base}/result.json"),
    )  # fmt: skip


def own_submission(session: Session, student: Student, submission_id: str) -> Submission:
    sub = session.get(Submission, submission_id)
    if sub is None or sub.student_pk != student.id:  # another student's id answers exactly like an unknown one
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    return sub


@router.post(
    "/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionPublic,
    responses={
        403: {"model": Problem, "description": "not on the assignment's roster"},
        404: {"model": Problem, "description": "no such assignment"},
        413: {"model": Problem, "description": "file too large"},
        415: {"model": Problem, "description": "not a .py file"},
        422: {
            "model": Problem,
            "description": "empty file or not UTF-8 text, an assignment id that is not a slug, or a missing field",
        },
        429: {"model": Problem, "description": "too many submissions in the rate window"},
    },
)
def submit(
    state: StateDep,
    session: SessionDep,
    student: CurrentStudent,
    response: Response,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="your solution, one .py file")],
    assignment: Annotated[
        str, Form(min_length=1, max_length=64, description="the assignment id, e.g. init-reg", json_schema_extra=SLUG)
    ],
) -> SubmissionPublic:
    """Store the file and queue it for grading; answers at once with the submission's id (grading takes
    minutes: poll GET /api/submissions/{id})."""
    settings = state.settings
    try:
        target = find_assignment(session, student, assignment)
        check_rate(session, student, target.id, settings.rate_limit, settings.rate_window_seconds)
        data = file.file.read(settings.max_upload_bytes + 1)
        filename = check_file(file.filename, data, settings.max_upload_bytes)
    except Rejected as e:
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
        raise HTTPException(e.status_code, e.detail, headers=headers) from None
    sub = store_submission(session, state.storage, student, target, filename, data)
    session.commit()  # stored before queued: if the broker is down, the sweep sends it later
    # Queued once the answer is out: the submission is durable at the commit, and the student need not wait for
    # the broker (a fifth of a POST's time). Should this process die in between, the sweep sends it.
    background.add_task(send, state.celery, settings.queue, sub.id, sub.generation)
    response.headers["Location"] = f"/api/submissions/{sub.id}"
    return public(session, sub)


@router.get("/submissions", response_model=SubmissionList, responses={422: {"model": Problem}})
def list_submissions(
    session: SessionDep, student: CurrentStudent,
    assignment: Annotated[str | None, Query(description="only this assignment's", json_schema_extra=SLUG)] = None,
) -> SubmissionList:  # fmt: skip
    """Your submissions, newest first (only yours)."""
    query = select(Submission).where(Submission.student_pk == student.id)
    if assignment is not None:
        if not is_assignment_id(assignment):
            raise HTTPException(422, f"{shown(assignment)} is not a valid assignment id ({RULE}).")
        query = query.where(Submission.assignment_id == assignment)
    subs = session.scalars(query.order_by(Submission.created_at.desc())).all()
    return SubmissionList(submissions=[public(session, s) for s in subs])


@router.get("/submissions/{submission_id}", response_model=SubmissionPublic, responses={404: {"model": Problem}})
def get_submission(session: SessionDep, student: CurrentStudent, submission_id: str) -> SubmissionPublic:
    """Status, progress and, once graded, the score."""
    return public(session, own_submission(session, student, submission_id))


def _graded_file(state: StateDep, sub: Submission, relative: str | None, what: str) -> str:
    if sub.status != Status.done:
        detail = {
            Status.queued: "is waiting in the queue",
            Status.running: f"is being graded ({sub.progress:.0%})",
            Status.failed: "could not be graded; your instructor can regrade it",
        }[sub.status]
        raise HTTPException(status.HTTP_409_CONFLICT, f"Submission {sub.id} {detail}: the {what} is not ready.")
    if relative is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"The {what} of this submission is missing: {sub.error or ''}")
    return str(state.storage.path(relative))


@router.get(
    "/submissions/{submission_id}/report.pdf",
    response_class=FileResponse,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"model": Problem}, 409: {"model": Problem}},
)
def get_report(state: StateDep, session: SessionDep, student: CurrentStudent, submission_id: str) -> FileResponse:
    """The PDF report (409 until the submission is graded)."""
    sub = own_submission(session, student, submission_id)
    path = _graded_file(state, sub, sub.report_path, "report")
    return FileResponse(path, media_type="application/pdf", filename=f"report-{sub.assignment_id}-{sub.id[:8]}.pdf")


@router.get(
    "/submissions/{submission_id}/result.json",
    response_class=FileResponse,
    responses={200: {"content": {"application/json": {}}}, 404: {"model": Problem}, 409: {"model": Problem}},
)
def get_result(state: StateDep, session: SessionDep, student: CurrentStudent, submission_id: str) -> FileResponse:
    """The result in labgrader's versioned schema (409 until the submission is graded)."""
    sub = own_submission(session, student, submission_id)
    return FileResponse(_graded_file(state, sub, sub.result_path, "result"), media_type="application/json")


@router.get("/assignments", response_model=AssignmentList)
def list_assignments(session: SessionDep, student: CurrentStudent) -> AssignmentList:
    """The assignments you are on the roster of, with their deadlines."""
    rows = session.scalars(
        select(Assignment).join(Enrollment, Enrollment.assignment_id == Assignment.id)
        .where(Enrollment.student_pk == student.id).order_by(Assignment.id)
    ).all()  # fmt: skip
    return AssignmentList(assignments=[AssignmentPublic(id=a.id, title=a.title, deadline=a.deadline) for a in rows])
