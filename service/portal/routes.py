"""The student portal's pages and actions (/student). Every page but the sign-in needs a student session; every
POST needs the session's CSRF token. A student only ever sees their own submissions and answers: another
student's submission id answers exactly like an unknown one."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import APIRouter, BackgroundTasks, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from grader.catalog import TITLES
from service.api.deps import SessionDep, StateDep
from service.api.submissions import NOT_FOUND, public
from service.dashboard.auth import CSRF_FIELD, Csrf, csrf_token
from service.dashboard.grades import check_columns, counted_submission, section_columns
from service.intake import Rejected, check_file, check_rate, find_assignment, store_submission
from service.models import Assignment, Enrollment, Status, Student, Submission, utcnow
from service.portal import answers as written
from service.portal.auth import Student_, session_student, sign_in, sign_out
from service.queue import send

ROOT = Path(__file__).resolve().parents[2]
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"portal.js": "text/javascript", "portal.css": "text/css"}
router = APIRouter(prefix="/student", include_in_schema=False)
# Scripts only from this site's files; the report's HTML is framed from this site; nothing frames the portal.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")  # fmt: skip
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                "Cache-Control": "no-store"}  # fmt: skip
# The report's HTML is our own rendering of the result; it runs no script and loads nothing, even if a text in it
# were to slip through escaping.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox; "
              "frame-ancestors 'self'")  # fmt: skip
LIVE = (Status.queued, Status.running)


def _when(d: datetime | None) -> str:
    return d.astimezone().strftime("%Y-%m-%d %H:%M") if isinstance(d, datetime) else ""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "templates" / "portal"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters["points"] = lambda v: "" if v is None else f"{v:g}"
    env.filters["when"] = _when
    env.filters["size"] = lambda n: f"{n / 1e6:g} MB" if n >= 1e6 else f"{n / 1e3:g} kB" if n >= 1e3 else f"{n} bytes"
    return env


ENV = _environment()


def page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    html = ENV.get_template(template).render(request=request, csrf=csrf_token(request), csrf_field=CSRF_FIELD,
                                             titles=TITLES, **context)  # fmt: skip
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# -- signing in ---------------------------------------------------------------------------------------------------
@router.get("")
def home(request: Request, state: StateDep, session: SessionDep) -> Response:
    student = session_student(request, session)
    if student is None:
        return page(request, "signin.html.j2", error=None)
    items = [_assignment_view(state, session, student, a) for a in _enrolled(session, student)]
    return page(request, "home.html.j2", me=student, items=items)


@router.post("/login", dependencies=[Csrf])
def login(request: Request, session: SessionDep, token: Annotated[str, Form(max_length=1000)] = "") -> Response:
    if sign_in(request, session, token) is None:
        error = ("Enter the token your instructor gave you." if not token.strip() else
                 "This token is not known: check that you copied all of it (it starts with lg_), or ask your "
                 "instructor for a new one.")  # fmt: skip
        return page(request, "signin.html.j2", status_code=401, error=error)
    return back("/student")


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    sign_out(request)
    return back("/student")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "max-age=3600"})


# -- assignments --------------------------------------------------------------------------------------------------
def _enrolled(session: SessionDep, student: Student) -> list[Assignment]:
    return list(session.scalars(select(Assignment).join(Enrollment, Enrollment.assignment_id == Assignment.id)
                                .where(Enrollment.student_pk == student.id).order_by(Assignment.id)))  # fmt: skip


def _assignment_view(state: StateDep, session: SessionDep, student: Student, a: Assignment,
                     with_submissions: bool = False) -> dict:  # fmt: skip
    """What the pages show of one assignment: deadline, the submissions left in the rate window, the counted
    grade, and the written questions' state."""
    settings = state.settings
    since = utcnow() - timedelta(seconds=settings.rate_window_seconds)
    subs = list(session.scalars(select(Submission).where(Submission.student_pk == student.id,
                                                         Submission.assignment_id == a.id)
                                .order_by(Submission.created_at.desc())))  # fmt: skip
    recent = [s for s in subs if s.created_at >= since]
    left = max(0, settings.rate_limit - len(recent))
    next_slot = (
        min(s.created_at for s in recent) + timedelta(seconds=settings.rate_window_seconds) if not left else None
    )
    views = written.question_views(session, student.id, a)
    manual = [v.grade.points for v in views if v.grade is not None]
    return {
        "a": a, "subs": subs if with_submissions else subs[:3], "count": len(subs), "left": left,
        "limit": settings.rate_limit, "window_minutes": settings.rate_window_seconds // 60, "next_slot": next_slot,
        "counted": counted_submission(subs, a.counting), "past_deadline": bool(a.deadline and utcnow() > a.deadline),
        "questions": views, "answered": sum(1 for v in views if v.submitted),
        "manual": sum(manual) if manual else None, "manual_max": sum(v.q.points for v in views),
        "max_upload": settings.max_upload_bytes,
    }  # fmt: skip


def _own_assignment(session: SessionDep, student: Student, assignment_id: str) -> Assignment:
    try:
        return find_assignment(session, student, assignment_id)
    except Rejected:
        message = "You have no assignment with this id: the portal's home lists yours."
        raise HTTPException(status.HTTP_404_NOT_FOUND, message) from None


@router.get("/assignments/{assignment_id}")
def assignment(request: Request, state: StateDep, session: SessionDep, me: Student_, assignment_id: str,
               saved: str = "", err: str = "") -> HTMLResponse:  # fmt: skip
    a = _own_assignment(session, me, assignment_id)
    return page(request, "assignment.html.j2", me=me, v=_assignment_view(state, session, me, a, True), saved=saved,
                err=err)  # fmt: skip


@router.post("/assignments/{assignment_id}/submissions", dependencies=[Csrf])
def upload(request: Request, state: StateDep, session: SessionDep, background: BackgroundTasks, me: Student_,
           assignment_id: str, file: Annotated[UploadFile | None, File()] = None,
           with_answers: Annotated[bool, Form()] = False) -> Response:  # fmt: skip
    """The API's checks and messages (service/intake.py). A script's fetch gets JSON; a plain form a page.
    `with_answers`: the written answers' drafts are submitted with the file."""
    settings = state.settings
    try:
        target = find_assignment(session, me, assignment_id)
        if file is None or not file.filename:
            raise Rejected(422, "Choose your .py file first (or drop it on the upload box).")
        check_rate(session, me, target.id, settings.rate_limit, settings.rate_window_seconds)
        data = file.file.read(settings.max_upload_bytes + 1)
        filename = check_file(file.filename, data, settings.max_upload_bytes)
    except Rejected as e:
        session.rollback()
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
        if wants_json(request):
            return JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=headers)
        a = _own_assignment(session, me, assignment_id)
        return page(request, "assignment.html.j2", status_code=e.status_code, me=me,
                    v=_assignment_view(state, session, me, a, True), saved="", err=e.detail)  # fmt: skip
    sub = store_submission(session, state.storage, me, target, filename, data)
    if with_answers:
        written.save_answers(session, me, target, {}, submit=True)
    session.commit()  # stored before queued: if the broker is down, the sweep sends it later
    background.add_task(send, state.celery, settings.queue, sub.id, sub.generation)
    url = f"/student/submissions/{sub.id}"
    if wants_json(request):
        return JSONResponse({"id": sub.id, "url": url}, status_code=status.HTTP_202_ACCEPTED, headers={"Location": url})
    return back(url)


@router.post("/assignments/{assignment_id}/answers", dependencies=[Csrf])
async def save_answers(request: Request, state: StateDep, session: SessionDep, me: Student_,
                       assignment_id: str) -> Response:  # fmt: skip
    """Drafts are saved as the student types (a script's fetch, JSON back) or with the Save button; Submit makes
    every draft the submitted answer."""
    a = _own_assignment(session, me, assignment_id)
    form = await request.form()
    texts = {k[2:]: v for k, v in form.items() if k.startswith("q_") and isinstance(v, str)}
    submit = form.get("action") == "submit"
    try:
        submitted = written.save_answers(session, me, a, texts, submit)
    except written.AnswerError as e:
        session.rollback()
        if wants_json(request):
            return JSONResponse({"detail": str(e)}, status_code=422)
        return page(request, "assignment.html.j2", status_code=422, me=me,
                    v=_assignment_view(state, session, me, a, True), saved="", err=str(e))  # fmt: skip
    session.commit()
    if wants_json(request):
        return JSONResponse({"saved_at": utcnow().isoformat(), "submitted": submitted})
    what = "submitted" if submit else "draft"
    return back(f"/student/assignments/{a.id}?saved={what}#answers")


# -- one submission -----------------------------------------------------------------------------------------------
def _own(session: SessionDep, student: Student, submission_id: str) -> Submission:
    sub = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if sub is None or sub.student_pk != student.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND.split(". ")[0] + ": the portal's home lists yours.")
    return sub


def status_of(session: SessionDep, sub: Submission) -> dict:
    """The API's view of a submission (service/api/submissions.py), with the portal's links."""
    data = public(session, sub).model_dump(mode="json")
    base = f"/student/submissions/{sub.id}"
    data["links"] = {"self": base, "report": f"{base}/report.pdf", "result": f"{base}/result.json"}
    data["live"] = sub.status in LIVE
    return data


def _report_html(state: StateDep, sub: Submission) -> Path | None:
    if sub.status != Status.done or not sub.report_path:
        return None
    path = state.storage.path(sub.report_path).with_name("report.html")
    return path if path.exists() else None


@router.get("/submissions/{submission_id}")
def submission(request: Request, state: StateDep, session: SessionDep, me: Student_, submission_id: str):
    sub = _own(session, me, submission_id)
    a = session.get(Assignment, sub.assignment_id)
    return page(request, "submission.html.j2", me=me, a=a, s=sub, st=status_of(session, sub),
                columns=check_columns(a), sections=section_columns(a),
                report_html=_report_html(state, sub) is not None)  # fmt: skip


@router.get("/submissions/{submission_id}/status")
def submission_status(session: SessionDep, me: Student_, submission_id: str) -> JSONResponse:
    """Polled by the submission page while the grading waits or runs."""
    return JSONResponse(status_of(session, _own(session, me, submission_id)), headers={"Cache-Control": "no-store"})


def _graded(state: StateDep, sub: Submission, relative: str | None, what: str) -> Path:
    if sub.status != Status.done or relative is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"This submission has no {what} yet (it is {sub.status.value}).")
    return state.storage.path(relative)


@router.get("/submissions/{submission_id}/report.pdf")
def report_pdf(state: StateDep, session: SessionDep, me: Student_, submission_id: str,
               download: bool = False) -> FileResponse:  # fmt: skip
    sub = _own(session, me, submission_id)
    return FileResponse(_graded(state, sub, sub.report_path, "report"), media_type="application/pdf",
                        filename=f"report-{sub.assignment_id}-{sub.id[:8]}.pdf",
                        content_disposition_type="attachment" if download else "inline")  # fmt: skip


@router.get("/submissions/{submission_id}/report.html")
def report_html(state: StateDep, session: SessionDep, me: Student_, submission_id: str) -> FileResponse:
    sub = _own(session, me, submission_id)
    path = _report_html(state, sub)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This submission's report has no web version: open the PDF.")
    headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/submissions/{submission_id}/result.json")
def result_json(state: StateDep, session: SessionDep, me: Student_, submission_id: str) -> FileResponse:
    sub = _own(session, me, submission_id)
    return FileResponse(_graded(state, sub, sub.result_path, "result"), media_type="application/json",
                        filename=f"result-{sub.assignment_id}-{sub.id[:8]}.json",
                        content_disposition_type="inline")  # fmt: skip
