"""The FastAPI app: routes, and a lifespan that owns the database, the storage, the queue and the sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from service import login
from service.api import instructors, submissions
from service.api.deps import AppState, StateDep
from service.api.limits import BodyLimit
from service.api.schemas import Health
from service.dashboard import routes as dashboard
from service.dashboard.auth import LoginRequired, login_redirect, secret_key
from service.db import Database
from service.intake import too_large
from service.login import dummy_hash
from service.maintenance import sweep_once
from service.portal import grading as answer_grading
from service.portal import routes as portal
from service.portal.auth import StudentLoginRequired
from service.queue import broker_answers, make_celery
from service.settings import Settings
from service.storage import Storage

log = logging.getLogger(__name__)

DESCRIPTION = """Submit a solution of the initialization & regularization lab and get it graded.

Authenticate with `Authorization: Bearer TOKEN` (the token from your instructor's roster). `POST /api/submissions`
answers at once with an id; grading takes minutes: poll `GET /api/submissions/{id}` for status and progress,
then download `report.pdf` and `result.json`."""


async def _sweep_forever(state: AppState) -> None:
    while True:
        await asyncio.sleep(state.settings.sweep_interval_seconds)
        try:
            await run_in_threadpool(sweep_once, state.db, state.celery, state.settings)
            await run_in_threadpool(login.prune, state.db, state.settings)
        except Exception:  # a database or broker hiccup must not end the loop
            log.exception("sweep failed; trying again in %s s", state.settings.sweep_interval_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(settings, Database(settings.sqlalchemy_url), Storage(settings.storage_dir),
                         make_celery(settings), anyio.CapacityLimiter(settings.password_checks),
                         anyio.CapacityLimiter(login.RECORD_THREADS))  # fmt: skip
        app.state.labgrader = state
        await run_in_threadpool(dummy_hash)  # made once, before the first login needs it (as slow as a check)
        await run_in_threadpool(login.prune, state.db, settings)
        sweeper = asyncio.create_task(_sweep_forever(state)) if settings.sweep_interval_seconds > 0 else None
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            state.db.dispose()
            state.celery.close()

    app = FastAPI(title="labgrader", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(SessionMiddleware, secret_key=secret_key(settings), session_cookie="labgrader_session",
                       max_age=8 * 3600, same_site="strict", https_only=settings.secure_cookies)  # fmt: skip
    # the form's other fields and the multipart framing need a little room beside the file itself
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + 64 * 1024,
                       detail=too_large(settings.max_upload_bytes))  # fmt: skip
    app.include_router(submissions.router)
    app.include_router(instructors.router)
    app.include_router(dashboard.router)
    app.include_router(answer_grading.router)
    app.include_router(portal.router)

    @app.exception_handler(LoginRequired)
    def _to_login(request: Request, exc: LoginRequired) -> Response:
        url = login_redirect(exc)
        if request.headers.get("hx-request"):  # htmx follows this header instead of swapping a login page in
            return Response(status_code=204, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(StudentLoginRequired)
    def _to_sign_in(request: Request, exc: StudentLoginRequired) -> Response:
        if "application/json" in request.headers.get("accept", ""):  # the portal's script: say it, do not redirect
            return JSONResponse({"detail": "Your session has ended: sign in again with your token."}, status_code=401)
        return RedirectResponse("/student", status_code=303)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        """Instructors to their dashboard, everyone else to the student portal."""
        return RedirectResponse("/dashboard" if "instructor" in request.session else "/student", status_code=303)

    @app.get("/api/health", response_model=Health, tags=["service"], responses={503: {"model": Health}})
    def health(state: StateDep, response: Response) -> Health:
        """Whether the database and the broker answer (503 when one does not; docker-compose's health check)."""
        try:
            with state.db.engine.connect() as c:
                c.execute(text("SELECT 1"))
            database = True
        except Exception:
            database = False
        broker = broker_answers(settings.broker_url)
        if not (database and broker):
            response.status_code = 503
        return Health(database=database, broker=broker)

    return app
