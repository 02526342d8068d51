"""Student sessions: the roster token is sent once, in a POST, and the signed session cookie (the dashboard's)
carries the student from then on. The token never appears in a URL, a page or a log.

The cookie holds the student's row id and a fingerprint of their token hash: when the instructor issues a new
token (roster re-import with reissue), the fingerprint no longer matches and every session of the old token ends."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import SessionDep
from service.dashboard.auth import csrf_token
from service.models import Student
from service.security import token_hash

STUDENT_KEY = "student"
FINGERPRINT_KEY = "student_token"


class StudentLoginRequired(Exception):
    """Raised by portal dependencies; the app answers with the sign-in page's address."""


def _fingerprint(student: Student) -> str:
    return student.token_hash[:16]


def sign_in(request: Request, session: Session, token: str) -> Student | None:
    """The student whose token this is, now signed in (a fresh session and CSRF token), or None."""
    token = token.strip()
    if not token or len(token) > 200:
        return None
    student = session.scalar(select(Student).where(Student.token_hash == token_hash(token)))
    if student is None:
        return None
    request.session.clear()  # a new session: nothing of an earlier one (an instructor's included) carries over
    request.session[STUDENT_KEY] = student.id
    request.session[FINGERPRINT_KEY] = _fingerprint(student)
    csrf_token(request)
    return student


def sign_out(request: Request) -> None:
    request.session.clear()


def session_student(request: Request, session: Session) -> Student | None:
    pk = request.session.get(STUDENT_KEY)
    student = session.get(Student, pk) if isinstance(pk, int) else None
    if student is None or request.session.get(FINGERPRINT_KEY) != _fingerprint(student):
        return None
    return student


def current_student(request: Request, session: SessionDep) -> Student:
    student = session_student(request, session)
    if student is None:
        request.session.pop(STUDENT_KEY, None)
        request.session.pop(FINGERPRINT_KEY, None)
        raise StudentLoginRequired
    return student


Student_ = Annotated[Student, Depends(current_student)]
