"""Instructor routes (HTTP Basic with the instructor's email and password): every submission of an assignment,
and regrading one submission or a whole assignment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy import select

from service import login
from service.api.deps import SessionDep, StateDep
from service.api.schemas import Problem, Regraded, SubmissionList
from service.api.submissions import public
from service.ids import RULE, is_assignment_id, shown
from service.maintenance import regrade_and_send
from service.models import Assignment, Instructor, Submission

basic = HTTPBasic(auto_error=False, description="the instructor's email and password")


async def current_instructor(
    request: Request, state: StateDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> Instructor:
    """Throttled and checked off the event loop (service/login.py): a flood of wrong passwords is answered 429."""
    instructor = None
    if credentials is not None:
        try:
            instructor = await login.authenticate(state, credentials.username, credentials.password,
                                                  login.client_address(request))  # fmt: skip
        except (login.Throttled, login.Busy) as e:
            code = status.HTTP_429_TOO_MANY_REQUESTS if isinstance(e, login.Throttled) else 503
            raise HTTPException(code, str(e), headers={"Retry-After": str(e.retry_after)}) from None
    if instructor is None:
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
    responses={
        401: {"model": Problem, "description": "not an instructor"},
        429: {"model": Problem, "description": "too many login attempts (Retry-After says when to try again)"},
        503: {"model": Problem, "description": "too many password checks at once (Retry-After)"},
    },
)


def _assignment(session: SessionDep, assignment_id: str) -> Assignment:
    if not is_assignment_id(assignment_id):
        raise HTTPException(422, f"{shown(assignment_id)} is not a valid assignment id ({RULE}).")
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no assignment '{assignment_id}'.")
    return assignment


@router.get(
    "/assignments/{assignment_id}/submissions",
    response_model=SubmissionList,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
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
             responses={404: {"model": Problem}, 422: {"model": Problem}})  # fmt: skip
def regrade_assignment(state: StateDep, session: SessionDep, _: CurrentInstructor, assignment_id: str) -> Regraded:
    """Grade every submission of the assignment again (after a rubric change, for instance)."""
    _assignment(session, assignment_id)
    ids = list(session.scalars(select(Submission.id).where(Submission.assignment_id == assignment_id)))
    return Regraded(queued=regrade_and_send(state.db, state.celery, state.settings, ids))
