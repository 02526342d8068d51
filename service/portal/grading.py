"""Instructors grade the written answers: one page per student with every question, its rubric, the submitted
text, points and a comment; saving goes on to the next student whose answers wait for a grade. Manual grades are
kept per student, assignment and question (service/models.py ManualGrade): regrading the code leaves them."""

from __future__ import annotations

import math
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import select

from service.api.deps import SessionDep
from service.dashboard.auth import Csrf, Instructor_
from service.dashboard.routes import _assignment, back, page
from service.models import Answer, Enrollment, ManualGrade, Student, utcnow
from service.portal.answers import grades_of, question_views, questions

router = APIRouter(prefix="/dashboard", include_in_schema=False)
SCRIPT = Path(__file__).resolve().parent / "static" / "grading.js"
MAX_COMMENT = 5000


def _roster(session: SessionDep, assignment_id: str) -> list[Student]:
    students = session.scalars(select(Student).join(Enrollment, Enrollment.student_pk == Student.id)
                               .where(Enrollment.assignment_id == assignment_id))  # fmt: skip
    return sorted(students, key=lambda s: (s.name.casefold(), s.student_id))


def _table(session: SessionDep, assignment_id: str) -> tuple[dict, dict]:
    """Submitted answers and grades of the whole assignment: {(student_pk, question_id): row}, two queries."""
    answers = {(a.student_pk, a.question_id): a for a in session.scalars(
        select(Answer).where(Answer.assignment_id == assignment_id, Answer.text.is_not(None)))}  # fmt: skip
    grades = {(g.student_pk, g.question_id): g for g in session.scalars(
        select(ManualGrade).where(ManualGrade.assignment_id == assignment_id))}  # fmt: skip
    return answers, grades


def _waiting(pk: int, qids: list[str], answers: dict, grades: dict) -> bool:
    """Whether the student has a submitted answer without a grade (or changed after it was graded)."""
    for q in qids:
        a, g = answers.get((pk, q)), grades.get((pk, q))
        if a is not None and (g is None or g.graded_at < a.submitted_at):
            return True
    return False


@router.get("/answers-static/grading.js")
def script() -> FileResponse:
    return FileResponse(SCRIPT, media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


@router.get("/assignments/{assignment_id}/answers")
def index(request: Request, session: SessionDep, me: Instructor_, assignment_id: str, msg: str = "") -> HTMLResponse:
    a = _assignment(session, assignment_id)
    qs = questions(a)
    answers, grades = _table(session, a.id)
    qids = [q.id for q in qs]
    rows = [{"s": s, "cells": [(answers.get((s.id, q)), grades.get((s.id, q))) for q in qids],
             "waiting": _waiting(s.id, qids, answers, grades),
             "points": sum(g.points for q in qids if (g := grades.get((s.id, q)))) if any(
                 (s.id, q) in grades for q in qids) else None}
            for s in _roster(session, a.id)]  # fmt: skip
    first = next((r["s"].id for r in rows if r["waiting"]), None)
    return page(request, "answers_index.html.j2", me=me, a=a, qs=qs, rows=rows, first=first, msg=msg,
                waiting=sum(r["waiting"] for r in rows), max_points=sum(q.points for q in qs))  # fmt: skip


def _neighbours(session: SessionDep, assignment_id: str, pk: int) -> tuple[int | None, int | None, int | None]:
    """The previous and next students on the roster, and the next one (after this one, wrapping) whose answers
    wait for a grade."""
    roster = _roster(session, assignment_id)
    pks = [s.id for s in roster]
    i = pks.index(pk)
    answers, grades = _table(session, assignment_id)
    qids = list({q for _, q in answers} | {q for _, q in grades})
    order = pks[i + 1 :] + pks[:i]
    waiting = next((p for p in order if _waiting(p, qids, answers, grades)), None)
    return (pks[i - 1] if i > 0 else None), (pks[i + 1] if i + 1 < len(pks) else None), waiting


def _student(session: SessionDep, assignment_id: str, student_pk: int) -> Student:
    enrolled = session.get(Enrollment, (student_pk, assignment_id))
    if enrolled is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such student on this assignment.")
    return session.get(Student, student_pk)


@router.get("/assignments/{assignment_id}/answers/{student_pk}")
def grade_page(request: Request, session: SessionDep, me: Instructor_, assignment_id: str, student_pk: int,
               msg: str = "", err: str = "") -> HTMLResponse:  # fmt: skip
    a = _assignment(session, assignment_id)
    student = _student(session, a.id, student_pk)
    prev, nxt, waiting = _neighbours(session, a.id, student.id)
    return page(request, "answers.html.j2", me=me, a=a, student=student, views=question_views(session, student.id, a),
                prev=prev, next=nxt, waiting=waiting, msg=msg, err=err)  # fmt: skip


@router.post("/assignments/{assignment_id}/answers/{student_pk}", dependencies=[Csrf])
async def save_grades(request: Request, session: SessionDep, me: Instructor_, assignment_id: str,
                      student_pk: int) -> Response:  # fmt: skip
    """points_<question> (blank: not graded) and comment_<question> for each question; then `go`: "next" (the next
    student whose answers wait), "stay", or a student's id."""
    a = _assignment(session, assignment_id)
    student = _student(session, a.id, student_pk)
    form = await request.form()
    here = f"/dashboard/assignments/{a.id}/answers/{student.id}"
    stored = grades_of(session, student.id, a.id)
    changed = 0
    for q in questions(a):
        raw = str(form.get(f"points_{q.id}", "")).strip().replace(",", ".")
        comment = str(form.get(f"comment_{q.id}", "")).strip()[:MAX_COMMENT]
        grade = stored.get(q.id)
        if not raw:
            if grade is not None:
                session.delete(grade)
                changed += 1
            continue
        try:
            points = float(raw)
        except ValueError:
            points = math.nan
        if not (0 <= points <= q.points):  # NaN included
            return back(here, err=f"{q.title}: '{raw}' is not a number of points from 0 to {q.points:g}.")
        if grade is None:
            session.add(ManualGrade(student_pk=student.id, assignment_id=a.id, question_id=q.id, points=points,
                                    comment=comment, grader=me.email, graded_at=utcnow()))  # fmt: skip
            changed += 1
        elif grade.points != points or grade.comment != comment:
            grade.points, grade.comment, grade.grader, grade.graded_at = points, comment, me.email, utcnow()
            changed += 1
    session.flush()
    saved = f"Saved {student.name}'s grades." if changed else f"Nothing changed for {student.name}."
    go = str(form.get("go", "next"))
    if go == "stay":
        return back(here, msg=saved)
    if go.isdigit() and session.get(Enrollment, (int(go), a.id)) is not None:
        return back(f"/dashboard/assignments/{a.id}/answers/{go}", msg=saved)
    _, _, waiting = _neighbours(session, a.id, student.id)
    if waiting is None:
        return back(f"/dashboard/assignments/{a.id}/answers", msg=f"{saved} Every submitted answer is graded.")
    return back(f"/dashboard/assignments/{a.id}/answers/{waiting}", msg=saved)
