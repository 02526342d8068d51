"""Typed dependencies of the routes: the app's state, a database session, the authenticated student."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from celery import Celery
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Database
from service.models import Student
from service.security import token_hash
from service.settings import Settings
from service.storage import Storage


@dataclass
class AppState:
    settings: Settings
    db: Database
    storage: Storage
    celery: Celery
    password_checks: anyio.CapacityLimiter  # Argon2 checks at once in this process (service/login.py)
    login_records: anyio.CapacityLimiter  # threads counting login attempts at once (service/login.py)


async def get_state(request: Request) -> AppState:
    """async: a plain function would cost every request a hop to the thread pool and back for an attribute."""
    return request.app.state.labgrader


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A session for one request: committed when the route returns, rolled back when it raises."""
    with state.db.sessionmaker() as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session)]
bearer = HTTPBearer(auto_error=False, description="the student's token from the instructor's roster")


def current_student(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Student:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Missing token: send 'Authorization: Bearer YOUR_TOKEN' with the token your instructor gave you.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    student = session.scalar(select(Student).where(Student.token_hash == token_hash(credentials.credentials)))
    if student is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Unknown token: check that you copied the whole token your instructor gave you, or ask for a new one.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return student


CurrentStudent = Annotated[Student, Depends(current_student)]
