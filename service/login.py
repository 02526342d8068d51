"""Instructor logins, the dashboard's form and the API's Basic auth alike.

- Throttled: every attempt is counted before its password is checked, per client address and per account (the
  email, whether or not an instructor has it), in the database so that every API process shares the counts;
  beyond LABGRADER_LOGIN_LIMIT_PER_ADDRESS or _PER_ACCOUNT attempts within LOGIN_WINDOW_SECONDS the answer is 429
  with Retry-After, at once and without Argon2. Counting first means a burst of concurrent attempts cannot slip
  past the limit; a success gives its attempt back (and clears its account's count).
- Constant work: an unknown email is checked against a dummy Argon2 hash, so it answers as slowly as a wrong
  password (which emails have an account does not show in the time).
- Off the event loop and out of the shared thread pool: Argon2 (a fraction of a second of CPU) runs in a worker
  thread under a limiter of LABGRADER_PASSWORD_CHECKS per API process, the counting under one of RECORD_THREADS;
  a request waits for them without holding a thread of the pool that every other route runs on, so a flood of
  logins queues behind the limiters while /api/health and the students' routes answer.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time

import anyio
import anyio.to_thread
from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session
from starlette.requests import Request

from service.api.deps import AppState
from service.db import Database
from service.models import Instructor, LoginAttempts
from service.security import hash_password, verify_password
from service.settings import Settings

RECORD_THREADS = 2  # threads counting attempts in the database at once, per API process
MAX_WAITING = 32  # password checks queued per API process (about 10 s) beyond which a login is told to come back


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many login attempts from this address or for this account: try again in "
                         f"{retry_after} seconds (about {minutes} min). Forgot the password? An administrator "
                         "sets a new one with labgrader create-instructor EMAIL, which also lifts the account's "
                         "limit.")  # fmt: skip


class Busy(Exception):
    retry_after = 5

    def __init__(self) -> None:
        super().__init__("The server is checking too many passwords at once; try again in a few seconds.")


@functools.cache
def dummy_hash() -> str:
    """An Argon2 hash of a random password, with the same parameters as real ones: what unknown emails check."""
    return hash_password(secrets.token_urlsafe(16))


def normalize(email: str) -> str:
    return email.strip().lower()


def _keys(settings: Settings, address: str, email: str) -> list[tuple[str, int]]:
    account = hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:40]
    return [(f"address:{address[:90]}", settings.login_limit_per_address),
            (f"account:{account}", settings.login_limit_per_account)]  # fmt: skip


def _insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def charge(db: Database, settings: Settings, address: str, email: str) -> tuple[int | None, Instructor | None]:
    """Count one attempt against the address and the account, and find the instructor. Returns the seconds to
    wait when either is over its limit (None when not) and the instructor (None for an unknown email).
    Each count is one atomic upsert and update, so concurrent attempts (in any API process) each get their own."""
    now, window = time.time(), settings.login_window_seconds
    keys, retry = _keys(settings, address, email), None
    with db.session() as s:
        # read first: an attempt already over a limit is refused without a write (a flood mostly is)
        for key, attempts, started in s.execute(select(LoginAttempts.key, LoginAttempts.attempts,
                                                       LoginAttempts.window_start)
                                                .where(LoginAttempts.key.in_([k for k, _ in keys]))):  # fmt: skip
            if started > now - window and attempts >= dict(keys)[key]:
                retry = max(retry or 0, int(started + window - now) + 1)
        if retry is not None:
            return retry, None
        insert = _insert(s)
        for key, limit in keys:
            s.execute(insert(LoginAttempts).values(key=key, window_start=now, attempts=0).on_conflict_do_nothing())
            expired = LoginAttempts.window_start <= now - window
            attempts, started = s.execute(
                update(LoginAttempts)
                .where(LoginAttempts.key == key)
                .values(
                    attempts=case((expired, 1), else_=LoginAttempts.attempts + 1),
                    window_start=case((expired, now), else_=LoginAttempts.window_start),
                )  # fmt: skip
                .returning(LoginAttempts.attempts, LoginAttempts.window_start)
            ).one()
            if attempts > limit:
                retry = max(retry or 0, int(started + window - now) + 1)
        instructor = s.scalar(select(Instructor).where(Instructor.email == email))
    return retry, instructor


def give_back(db: Database, settings: Settings, address: str, email: str) -> None:
    """After a success: the address's attempt is returned, the account's count cleared."""
    (address_key, _), (account_key, _) = _keys(settings, address, email)
    with db.session() as s:
        s.execute(delete(LoginAttempts).where(LoginAttempts.key == account_key))
        s.execute(update(LoginAttempts).where(LoginAttempts.key == address_key, LoginAttempts.attempts > 0)
                  .values(attempts=LoginAttempts.attempts - 1))  # fmt: skip


def forget_account(session: Session, settings: Settings, email: str) -> None:
    """Clear the account's count (its password was just set by an administrator), in the caller's transaction."""
    (_, _), (account_key, _) = _keys(settings, "", normalize(email))
    session.execute(delete(LoginAttempts).where(LoginAttempts.key == account_key))


def prune(db: Database, settings: Settings) -> int:
    """Forget counts whose window has passed (the API's sweep loop calls this)."""
    with db.session() as s:
        cutoff = time.time() - settings.login_window_seconds
        return s.execute(delete(LoginAttempts).where(LoginAttempts.window_start <= cutoff)).rowcount


def client_address(request: Request) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For already applied by uvicorn)."""
    return request.client.host if request.client else "unknown"


async def authenticate(state: AppState, email: str, password: str, address: str) -> Instructor | None:
    """The instructor whose email and password these are, or None; Throttled or Busy when no check is made."""
    db, settings, checks, email = state.db, state.settings, state.password_checks, normalize(email)
    records = state.login_records
    retry, instructor = await anyio.to_thread.run_sync(charge, db, settings, address, email, limiter=records)
    if retry is not None:
        raise Throttled(retry)
    if checks.statistics().tasks_waiting >= MAX_WAITING:
        raise Busy
    stored = instructor.password_hash if instructor is not None else dummy_hash()
    ok = await anyio.to_thread.run_sync(verify_password, stored, password, limiter=checks)
    if not ok or instructor is None:
        return None
    await anyio.to_thread.run_sync(give_back, db, settings, address, email, limiter=records)
    return instructor
