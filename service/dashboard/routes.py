"""Dashboard pages and actions. Every page needs an instructor session; every POST needs the CSRF token."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import exists, func, or_, select

from grader.assignment import AssignmentError, load_assignment
from service import login as logins
from service.api.deps import SessionDep, StateDep
from service.dashboard import exports
from service.dashboard.auth import (
    CSRF_FIELD,
    Csrf,
    Instructor_,
    csrf_token,
    end_sessions,
    session_instructor,
    start_session,
)
from service.dashboard.grades import (
    FILTERS,
    PENDING,
    SORTS,
    check_columns,
    grade_table,
    manual_max,
    section_columns,
    select_rows,
)
from service.dashboard.overview import overview
from service.dashboard.workers import workers_online
from service.ids import RULE, is_assignment_id, shown
from service.maintenance import regrade_and_send
from service.models import Assignment, Enrollment, Instructor, Status, Submission
from service.portal.answers import questions
from service.roster import RosterError, import_roster, parse_roster, tokens_csv
from service.storage import write_atomic

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "dashboard"
STATIC = Path(__file__).resolve().parent / "static"
SCRIPTS = ("htmx.min.js", "dashboard.js")
router = APIRouter(include_in_schema=False)
# Scripts only from this site's files: no inline script or handler runs, whatever a page holds. Inline styles and
# data: images (the overview's figures) stay allowed; the report PDFs are embedded from this site.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")  # fmt: skip
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def _size(n: int | None) -> str:
    if n is None:
        return ""
    return f"{n} B" if n < 1000 else f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.2f} MB"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters["points"] = lambda v: "" if v is None else f"{v:g}"
    env.filters["when"] = lambda d: d.astimezone().strftime("%Y-%m-%d %H:%M") if isinstance(d, datetime) else ""
    env.filters["svg_uri"] = lambda svg: "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    env.filters["b64"] = lambda text: base64.b64encode(text.encode()).decode()
    env.filters["size"] = _size
    return env


ENV = _environment()


def page(request: Request, template: str, status_code: int = 200, headers: dict[str, str] | None = None,
         **context) -> HTMLResponse:  # fmt: skip
    html = ENV.get_template(template).render(request=request, csrf=csrf_token(request), csrf_field=CSRF_FIELD,
                                             path=request.url.path, **context)  # fmt: skip
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS | (headers or {}))


def back(url: str, **flash: str) -> RedirectResponse:
    """Post/redirect/get: the message travels in the query string of the page that shows it."""
    return RedirectResponse(f"{url}?{urlencode(flash)}" if flash else url, status_code=status.HTTP_303_SEE_OTHER)


def _assignment(session: SessionDep, assignment_id: str) -> Assignment:
    if not is_assignment_id(assignment_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{shown(assignment_id)} is not a valid assignment id ({RULE}).")
    a = session.get(Assignment, assignment_id)
    if a is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no assignment '{assignment_id}'.")
    return a


# -- login --------------------------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/dashboard") -> HTMLResponse:
    return page(request, "login.html.j2", next=next if next.startswith("/") else "/dashboard", error=None)


@router.post("/login", dependencies=[Csrf])
async def login(request: Request, state: StateDep, email: Annotated[str, Form()], password: Annotated[str, Form()],
                next: Annotated[str, Form()] = "/dashboard") -> Response:  # fmt: skip
    """Throttled, and the password checked off the event loop (service/login.py)."""
    try:
        instructor = await logins.authenticate(state, email, password, logins.client_address(request))
    except (logins.Throttled, logins.Busy) as e:
        code = 429 if isinstance(e, logins.Throttled) else 503
        return page(request, "login.html.j2", status_code=code, headers={"Retry-After": str(e.retry_after)},
                    next=next, error=str(e))  # fmt: skip
    if instructor is None:
        return page(request, "login.html.j2", status_code=401, next=next, error="Wrong email or password.")
    start_session(request, instructor)
    return back(next if next.startswith("/") and not next.startswith("//") else "/dashboard")


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, session: SessionDep) -> Response:
    """Ends the session on the server too: a copy of the cookie opens nothing afterwards."""
    instructor = session_instructor(request, session)
    if instructor is not None:
        end_sessions(instructor)
    request.session.clear()
    return back("/login")


@router.get("/dashboard/static/{name}")
def static(name: str) -> FileResponse:
    if name not in SCRIPTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
    return FileResponse(STATIC / name, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


# -- assignments --------------------------------------------------------------------------------------------------
@router.get("/dashboard")
def assignments(request: Request, session: SessionDep, me: Instructor_, msg: str = "", err: str = "") -> HTMLResponse:
    """Three queries whatever the number of assignments: the assignments, students per assignment, submissions per
    assignment and status (one GROUP BY each)."""
    students = dict(session.execute(select(Enrollment.assignment_id, func.count())
                                    .group_by(Enrollment.assignment_id)).all())  # fmt: skip
    counts: dict[str, dict[str, int]] = {}
    for assignment_id, st, n in session.execute(select(Submission.assignment_id, Submission.status, func.count())
                                                .group_by(Submission.assignment_id, Submission.status)):  # fmt: skip
        counts.setdefault(assignment_id, {})[st.value] = n
    items = [{"a": a, "students": students.get(a.id, 0), "counts": counts.get(a.id, {}),
              "points": sum(c.max_points for c in check_columns(a)) + manual_max(a)}
             for a in session.scalars(select(Assignment).order_by(Assignment.created_at))]  # fmt: skip
    return page(request, "assignments.html.j2", me=me, items=items, msg=msg, err=err)


@router.post("/dashboard/assignments", dependencies=[Csrf])
def create_assignment(
    state: StateDep, session: SessionDep, me: Instructor_,
    id: Annotated[str, Form(max_length=1000)], title: Annotated[str, Form(max_length=200)] = "",
    deadline: Annotated[str, Form()] = "", counting: Annotated[str, Form(pattern="^(latest|best)$")] = "latest",
    rubric: Annotated[UploadFile | None, File()] = None,
) -> Response:  # fmt: skip
    """A new assignment from an assignment file (TOML like grader/assignments/init-reg.toml), or the built-in lab."""
    if not is_assignment_id(id):
        return back("/dashboard", err=f"{shown(id)} is not a valid assignment id: use {RULE}.")
    if session.get(Assignment, id) is not None:
        return back("/dashboard", err=f"An assignment '{id}' exists already.")
    config_path = None
    if rubric is not None and rubric.filename:
        path = state.storage.root / "assignments" / f"{id}.toml"
        write_atomic(path, rubric.file.read(256 * 1024))
        try:
            spec = load_assignment(path)
        except AssignmentError as e:
            path.unlink()
            return back("/dashboard", err=str(e).replace(str(path), rubric.filename))
        if not is_assignment_id(spec.id):
            path.unlink()
            return back("/dashboard", err=f"{rubric.filename}: its id {shown(spec.id)} is not a valid assignment id: "
                                          f"use {RULE}; change the id = line of the file.")  # fmt: skip
        config_path, title = str(path), title or spec.title
    try:
        when = _deadline(deadline)
    except ValueError as e:
        return back("/dashboard", err=str(e))
    session.add(Assignment(id=id, title=title or "Initialization & regularization", config_path=config_path,
                           deadline=when, counting=counting))  # fmt: skip
    return back(f"/dashboard/assignments/{id}", msg=f"Assignment {id} created. Import its roster below.")


def _deadline(text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a date and time (for example 2026-12-01T23:59).") from None
    return when if when.tzinfo else when.astimezone()  # the browser's field has no zone: the server's local time


@router.post("/dashboard/assignments/{assignment_id}/settings", dependencies=[Csrf])
def assignment_settings(
    session: SessionDep, me: Instructor_, assignment_id: str, deadline: Annotated[str, Form()] = "",
    counting: Annotated[str, Form(pattern="^(latest|best)$")] = "latest",
) -> Response:  # fmt: skip
    a = _assignment(session, assignment_id)
    try:
        a.deadline = _deadline(deadline)
    except ValueError as e:
        return back(f"/dashboard/assignments/{a.id}", err=str(e))
    a.counting = counting
    return back(f"/dashboard/assignments/{a.id}", msg="Settings saved.")


@router.post("/dashboard/assignments/{assignment_id}/roster", dependencies=[Csrf])
def roster(request: Request, session: SessionDep, me: Instructor_, assignment_id: str,
           csv_file: Annotated[UploadFile, File()], reissue: Annotated[bool, Form()] = False) -> Response:  # fmt: skip
    a = _assignment(session, assignment_id)
    try:
        rows = parse_roster(csv_file.file.read(2_000_000).decode("utf-8-sig"))
        issued = import_roster(session, rows, a.id, reissue=reissue)
    except UnicodeDecodeError:
        return back(f"/dashboard/assignments/{a.id}", err="The roster is not UTF-8 text; save it as CSV (UTF-8).")
    except RosterError as e:
        return back(f"/dashboard/assignments/{a.id}", err=str(e))
    return page(request, "tokens.html.j2", me=me, a=a, issued=issued, csv=tokens_csv(issued))


# -- the grade table ----------------------------------------------------------------------------------------------
def _refuse(request: Request, me: Instructor, a: Assignment, text: str, status_code: int = 400) -> HTMLResponse:
    """A page that says what was refused and why, with the way back to the assignment's grade table."""
    return page(request, "base.html.j2", status_code=status_code, me=me, err=text,
                back_to=f"/dashboard/assignments/{a.id}")  # fmt: skip


def _choice_error(name: str, value: str, allowed) -> str:
    values = ", ".join(f"'{v}'" if v else "'' (empty)" for v in allowed)
    return f"Unknown {name}={shown(value)}: the allowed values are {values}."


@router.get("/dashboard/assignments/{assignment_id}")
def grades(
    request: Request, session: SessionDep, me: Instructor_, assignment_id: str, sort: str = "name",
    desc: bool = False, filter: str = "", q: str = "", msg: str = "", err: str = "",
) -> HTMLResponse:  # fmt: skip
    """The grade table. An unknown filter or sort is refused (400, with the allowed values), not ignored."""
    a = _assignment(session, assignment_id)
    if filter not in FILTERS:
        return _refuse(request, me, a, _choice_error("filter", filter, FILTERS))
    if sort not in SORTS:
        return _refuse(request, me, a, _choice_error("sort", sort, SORTS))
    since = time.time()
    everyone = grade_table(session, a)
    rows = select_rows(everyone, filter, q.strip(), sort, desc)
    notes = {"ungraded": sum(r.export_score is None for r in everyone), "pending": sum(r.live for r in everyone),
             "fast": sum(bool(r.graded and r.graded.fast) for r in everyone)}  # fmt: skip
    return page(request, "grades.html.j2", me=me, a=a, rows=rows, total=len(everyone), columns=check_columns(a),
                sections=section_columns(a), sort=sort, desc=desc, filter=filter, q=q, filters=FILTERS, msg=msg,
                err=err, formats=exports.FORMATS, written_max=manual_max(a), notes=notes,
                since=f"{since:.3f}")  # fmt: skip


@router.get("/dashboard/assignments/{assignment_id}/live")
def live_rows(request: Request, session: SessionDep, me: Instructor_, assignment_id: str, since: float = 0.0):
    """The one poll of a grade table (every 2 s while a row is live): the rows that changed since the previous poll
    (`since`, the server's clock, with a second of overlap) as out-of-band swaps: those of students with a
    submission running (its progress moves), or queued, started or finished since; a queued row that did not move
    is not sent again. Then the next poller, which stops once nothing of the assignment is queued or running."""
    a = _assignment(session, assignment_id)
    now = time.time()
    after = datetime.fromtimestamp(max(0.0, min(since, now) - 1.0), UTC)
    pks = set(session.scalars(
        select(Submission.student_pk).distinct().where(Submission.assignment_id == a.id, or_(
            Submission.status == Status.running, Submission.queued_at >= after, Submission.started_at >= after,
            Submission.finished_at >= after))
    ))  # fmt: skip
    rows = grade_table(session, a, student_pks=pks) if pks else []
    polling = session.scalar(select(exists().where(Submission.assignment_id == a.id, Submission.status.in_(PENDING))))
    return page(request, "grade_row.html.j2", a=a, live_rows=rows, polling=bool(polling), since=f"{now:.3f}",
                columns=check_columns(a), sections=section_columns(a))  # fmt: skip


@router.get("/dashboard/assignments/{assignment_id}/rows/{student_pk}")
def grade_row(request: Request, session: SessionDep, me: Instructor_, assignment_id: str, student_pk: int):
    """One row of the grade table (the table itself polls /live, one request for all its rows)."""
    a = _assignment(session, assignment_id)
    rows = grade_table(session, a, student_pk)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such student on this assignment.")
    return page(request, "grade_row.html.j2", a=a, one_row=rows[0], columns=check_columns(a),
                sections=section_columns(a))  # fmt: skip


@router.get("/dashboard/assignments/{assignment_id}/students/{student_pk}")
def student_page(request: Request, session: SessionDep, me: Instructor_, assignment_id: str, student_pk: int,
                 show: str = "", msg: str = "") -> HTMLResponse:  # fmt: skip
    a = _assignment(session, assignment_id)
    rows = grade_table(session, a, student_pk)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such student on this assignment.")
    r = rows[0]
    shown = next((s for s in r.submissions if s.id == show), None) or next(
        (s for s in r.submissions if s.report_path), None
    )
    return page(request, "student.html.j2", me=me, a=a, r=r, shown=shown, columns=check_columns(a),
                sections=section_columns(a), msg=msg)  # fmt: skip


@router.get("/dashboard/assignments/{assignment_id}/students/{student_pk}/live")
def student_live(request: Request, session: SessionDep, me: Instructor_, assignment_id: str, student_pk: int,
                 show: str = "") -> Response:  # fmt: skip
    """The one poll of a student page (every 2 s while a submission of theirs waits or runs): its totals and its
    submissions table as out-of-band swaps; once nothing of theirs is queued or running, an empty answer with
    HX-Refresh, which reloads the page with the points and the report (and so stops the poll)."""
    a = _assignment(session, assignment_id)
    rows = grade_table(session, a, student_pk)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such student on this assignment.")
    r = rows[0]
    if not r.live:
        return Response(status_code=200, headers=PAGE_HEADERS | {"HX-Refresh": "true"})
    shown = next((s for s in r.submissions if s.id == show), None)
    return page(request, "grade_row.html.j2", a=a, live_student=r, shown=shown)


@router.get("/dashboard/submissions/{submission_id}/{name}")
def submission_file(state: StateDep, session: SessionDep, me: Instructor_, submission_id: str, name: str,
                    download: bool = False) -> FileResponse:  # fmt: skip
    sub = session.get(Submission, submission_id)
    relative = {"report.pdf": sub.report_path if sub else None, "result.json": sub.result_path if sub else None}
    if name not in relative or relative[name] is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This submission has no such file (not graded yet?).")
    media = "application/pdf" if name == "report.pdf" else "application/json"
    filename = f"{sub.student.student_id}-{sub.assignment_id}-{sub.id[:8]}-{name}"
    return FileResponse(state.storage.path(relative[name]), media_type=media, filename=filename,
                        content_disposition_type="attachment" if download else "inline")  # fmt: skip


@router.post("/dashboard/submissions/{submission_id}/regrade", dependencies=[Csrf])
def regrade_one(state: StateDep, session: SessionDep, me: Instructor_, submission_id: str) -> Response:
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such submission.")
    session.commit()
    regrade_and_send(state.db, state.celery, state.settings, [sub.id])
    return back(f"/dashboard/assignments/{sub.assignment_id}/students/{sub.student_pk}",
                msg=f"Submission of {sub.created_at:%Y-%m-%d %H:%M} queued for regrading.")  # fmt: skip


@router.post("/dashboard/assignments/{assignment_id}/regrade", dependencies=[Csrf])
def regrade_all(state: StateDep, session: SessionDep, me: Instructor_, assignment_id: str) -> Response:
    a = _assignment(session, assignment_id)
    ids = list(session.scalars(select(Submission.id).where(Submission.assignment_id == a.id)))
    session.commit()
    n = regrade_and_send(state.db, state.celery, state.settings, ids)
    return back("/dashboard/queue", msg=f"{n} submissions of {a.id} queued for regrading.")


# -- overview, queue, exports -------------------------------------------------------------------------------------
@router.get("/dashboard/assignments/{assignment_id}/overview")
def class_overview(request: Request, session: SessionDep, me: Instructor_, assignment_id: str) -> HTMLResponse:
    a = _assignment(session, assignment_id)
    columns = check_columns(a)
    return page(request, "overview.html.j2", me=me, a=a, o=overview(grade_table(session, a), columns))


@router.get("/dashboard/queue")
def queue(request: Request, state: StateDep, session: SessionDep, me: Instructor_, msg: str = "") -> HTMLResponse:
    counts = session.execute(select(Submission.assignment_id, Submission.status, func.count())
                             .group_by(Submission.assignment_id, Submission.status)).all()  # fmt: skip
    by_assignment: dict[str, dict[str, int]] = {}
    for assignment_id, st, n in counts:
        by_assignment.setdefault(assignment_id, {})[st.value] = n
    failures = session.scalars(select(Submission).where(Submission.status == Status.failed)
                               .order_by(Submission.finished_at.desc()).limit(50)).all()  # fmt: skip
    running = session.scalars(select(Submission).where(Submission.status == Status.running)
                              .order_by(Submission.started_at)).all()  # fmt: skip
    return page(request, "queue.html.j2", me=me, by_assignment=by_assignment, failures=failures, running=running,
                workers=workers_online(state.celery), msg=msg,
                assignments=session.scalars(select(Assignment.id).order_by(Assignment.id)).all())  # fmt: skip


@router.get("/dashboard/assignments/{assignment_id}/export.csv")
def export_csv(request: Request, session: SessionDep, me: Instructor_, assignment_id: str,
               format: str = "generic") -> Response:  # fmt: skip
    """Every student of the roster, with the grade of exports' rule (service/dashboard/exports.py); Moodle and
    Canvas refuse grades of the fast budgets (409, naming the students)."""
    a = _assignment(session, assignment_id)
    if format not in exports.FORMATS:
        return _refuse(request, me, a, _choice_error("format", format, exports.FORMATS))
    rows = select_rows(grade_table(session, a), sort="student_id")
    try:
        if format == "moodle":
            text = exports.moodle_csv(a, rows)
        elif format == "canvas":
            text = exports.canvas_csv(a, rows, sum(c.max_points for c in check_columns(a)) + manual_max(a))
        else:
            text = exports.generic_csv(a, rows, check_columns(a), section_columns(a), questions(a))
    except exports.FastGrades as e:
        return _refuse(request, me, a, str(e), status.HTTP_409_CONFLICT)
    name = f"{a.id}-grades-{'all' if format == 'generic' else format}.csv"
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@router.get("/dashboard/assignments/{assignment_id}/reports.zip")
def export_reports(state: StateDep, session: SessionDep, me: Instructor_, assignment_id: str) -> Response:
    a = _assignment(session, assignment_id)
    data = exports.reports_zip(state.storage, select_rows(grade_table(session, a), sort="student_id"))
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{a.id}-reports.zip"'})  # fmt: skip
