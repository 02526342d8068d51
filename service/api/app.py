"""The FastAPI app: routes, and a lifespan that owns the database, the storage, the queue and the sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from grader.text import MESSAGE_LIMIT, NAME_LIMIT, clean
from service import login
from service.api import instructors, submissions
from service.api.deps import AppState, StateDep
from service.api.docs import add_docs
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


WHERE = {"body": "form field", "query": "query parameter", "path": "path parameter", "header": "header"}
WHAT_TO_SEND = {  # the fields of POST /api/submissions, the only form of the API
    "file": "your solution, one .py file, as the multipart form field `file`",
    "assignment": "the assignment id (e.g. init-reg) as the form field `assignment`",
}
VALIDATION_PROBLEM = "a required field is missing or a field is invalid (the detail names it and says what to send)"


def validation_problem(errors: Sequence[dict]) -> str:
    """One sentence for a request that FastAPI could not validate: which field is missing or invalid, and what to
    send (the first error's field, and every missing field of the same kind)."""
    if not errors:
        return "The request is invalid: check it against the API's schema at /docs."

    def field(error: dict) -> tuple[str, str]:
        loc = [str(part) for part in error.get("loc", ())]
        where = WHERE.get(loc[0], "field") if loc else "field"
        return where, clean(".".join(loc[1:]) or (loc[0] if loc else "body"), NAME_LIMIT)

    first = errors[0]
    where, name = field(first)
    if first.get("type") == "missing":
        fields = [field(e) for e in errors if e.get("type") == "missing"]
        missing = list(dict.fromkeys(n for w, n in fields if w == where))
        names = " and ".join(f"'{n}'" for n in missing)
        plural = len(missing) > 1
        hints = [WHAT_TO_SEND[n] for n in missing if n in WHAT_TO_SEND]
        send = f"send {' and '.join(hints)}" if hints and where == "form field" else f"send the {where}"
        return f"The {where}{'s' if plural else ''} {names} {'are' if plural else 'is'} missing: {send}."
    message = clean(first.get("msg", "invalid value"), MESSAGE_LIMIT // 4).rstrip(".")
    hint = f"; send {WHAT_TO_SEND[name]}" if where == "form field" and name in WHAT_TO_SEND else ""
    return f"The {where} '{name}' is invalid ({message[:1].lower() + message[1:]}){hint}."


def _openapi(app: FastAPI) -> dict:
    """The schema, where every 422 answer is a Problem (as the validation handler answers), not FastAPI's list."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operation in (op for ops in schema.get("paths", {}).values() for op in ops.values()):
            answer = operation.get("responses", {}).get("422")
            if answer is None:
                continue
            if "HTTPValidationError" in str(answer.get("content", "")) or "content" not in answer:
                answer["content"] = problem
            if answer.get("description") in ("Validation Error", "Unprocessable Entity"):
                answer["description"] = VALIDATION_PROBLEM
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in str(schema.get("paths")):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


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

    app = FastAPI(title="labgrader", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # fmt: skip
    add_docs(app)  # /docs and /redoc with their files served from here, not from a CDN
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

    @app.exception_handler(RequestValidationError)
    def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_problem(exc.errors())}, status_code=422)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

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
