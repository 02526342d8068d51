"""Instructor routes (HTTP Basic with the instructor's email and password): every submission of an assignment,
and regrading one submission or a whole assignment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy import select

from service.api.deps import SessionDep, StateDep
from service.api.schemas import Problem, Regraded, SubmissionList
from service.api.submissions import public
from service.maintenance import regrade_and_send
from service.models import Assignment, Instructor, Submission
from service.security import verify_password

basic = HTTPBasic(auto_error=False, description="the instructor's email and password")


def current_instructor(
    session: SessionDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> Instructor:
    instructor = None
    if credentials is not None:
        instructor = session.scalar(select(Instructor).where(Instructor.email == credentials.username.lower()))
    if instructor is None or not verify_password(instructor.password_hash, credentials.password):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Instructor email or password is wrong (an instructor account is made with labgrader create-instructor).",
            headers={"WWW-Authenticate": "Basic"},
        )
    return instructor


CurrentInstructor = Annotated[Instructor, Depends(current_instructor)]
router = APIRouter(
    prefix="/api/instructor",
    tags=["instructors"],
    responses={401: {"model": Problem, "description": "not an instructor"}},
)


def _assignment(session: SessionDep, assignment_id: str) -> Assignment:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no assignment '{assignment_id}'.")
    return assignment


@router.get(
    "/assignments/{assignment_id}/submissions", response_model=SubmissionList, responses={404: {"model": Problem}}
)
def assignment_submissions(session: SessionDep, _: CurrentInstructor, assignment_id: str) -> SubmissionList:
    """Every submission of the assignment, newest first."""
    _assignment(session, assignment_id)
    subs = session.scalars(
        select(Submission).where(Submission.assignment_id == assignment_id).order_by(Submission.created_at.desc())
    ).all()
    return SubmissionList(submissions=[public(session, s) for s in subs])


@router.post("/submissions/{submission_id}/regrade", response_model=Regraded, status_code=202,
             responses={404: {"model": Problem}})  # fmt: skip
def regrade_submission(state: StateDep, session: SessionDep, _: CurrentInstructor, submission_id: str) -> Regraded:
    """Grade the submission again (a new generation; a grading under way stops)."""
    if session.get(Submission, submission_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no submission '{submission_id}'.")
    return Regraded(queued=regrade_and_send(state.db, state.celery, state.settings, [submission_id]))


@router.post("/assignments/{assignment_id}/regrade", response_model=Regraded, status_code=202,
             responses={404: {"model": Problem}})  # fmt: skip
def regrade_assignment(state: StateDep, session: SessionDep, _: CurrentInstructor, assignment_id: str) -> Regraded:
    """Grade every submission of the assignment again (after a rubric change, for instance)."""
    _assignment(session, assignment_id)
    ids = list(session.scalars(select(Submission.id).where(Submission.assignment_id == assignment_id)))
    return Regraded(queued=regrade_and_send(state.db, state.celery, state.settings, ids))
