"""Instructor sessions (a signed cookie) and CSRF tokens for every form and htmx request."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status

from service.api.deps import SessionDep
from service.models import Instructor
from service.settings import Settings
from service.storage import write_atomic

SESSION_KEY = "instructor"
VERSION_KEY = "version"  # the instructor's session_version when the session began
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """Raised by dashboard dependencies; the app answers with a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def login_redirect(exc: LoginRequired) -> str:
    return f"/login?next={quote(exc.next_url, safe='/')}"


def secret_key(settings: Settings) -> str:
    """LABGRADER_SECRET_KEY, or a random key made once and kept in the storage folder (shared by API processes)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.storage_dir) / "secret_key"
    if not path.exists():
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, secrets.token_urlsafe(48).encode())
        path.chmod(0o600)
    return path.read_text().strip()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the login form gets one before anyone logs in)."""
    token = request.session.get(CSRF_KEY)
    if not token:
        token = request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Every state-changing dashboard request carries the session's token (form field or htmx header)."""
    expected = request.session.get(CSRF_KEY, "")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        sent = form.get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "The form has expired or did not come from this dashboard; "
                            "reload the page and try again.")  # fmt: skip


def start_session(request: Request, instructor: Instructor) -> None:
    """A new session (and CSRF token) for the instructor, valid until they log out or their password changes."""
    request.session.clear()
    request.session[SESSION_KEY] = instructor.id
    request.session[VERSION_KEY] = instructor.session_version
    csrf_token(request)


def session_instructor(request: Request, session: SessionDep) -> Instructor | None:
    """The instructor of a live session: the cookie's signature proves it was issued, its version that it was not
    ended since (a cookie copied before a logout or a password change carries an older one)."""
    instructor_id = request.session.get(SESSION_KEY)
    instructor = session.get(Instructor, instructor_id) if isinstance(instructor_id, int) else None
    if instructor is None or request.session.get(VERSION_KEY) != instructor.session_version:
        return None
    return instructor


def end_sessions(instructor: Instructor) -> None:
    """Every session of the instructor ends, on every browser (the caller's transaction commits it)."""
    instructor.session_version += 1


def current_instructor(request: Request, session: SessionDep) -> Instructor:
    instructor = session_instructor(request, session)
    if instructor is None:
        for key in (SESSION_KEY, VERSION_KEY):  # an ended session's cookie is dropped (its CSRF token kept)
            request.session.pop(key, None)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/dashboard")
    return instructor


Instructor_ = Annotated[Instructor, Depends(current_instructor)]
Csrf = Depends(check_csrf)
