"""The dashboard over HTTP (in-process): login, CSRF, every page and action, the grade table's rules, exports.
The browser tests (test_dashboard_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select

from grader.assignment import load_assignment
from grader.result import CheckResult, GradeResult, IsolationInfo, SectionScore
from grader.result import Submission as SubmittedFile
from service import jobs
from service.api.app import create_app
from service.db import Database, make_engine
from service.intake import store_submission
from service.lifecycle import claim, finish
from service.migrate import alembic_config, upgrade
from service.models import Assignment, Instructor, Status, Student, Submission, utcnow
from service.security import hash_password
from service.storage import Storage

from .kit import TINY, enroll, make_settings, redis_do

PROF = {"email": "prof@example.org", "password": "correct horse"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def prof(db):
    with db.session() as s:
        s.add(Instructor(email=PROF["email"], password_hash=hash_password(PROF["password"])))


def login(client) -> str:
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={**PROF, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    return csrf_of(client.get("/dashboard").text)


def graded(db, settings, student_id: str, score: float, checks: dict[str, str], *, late=False, minutes_ago=0):
    """A submission of the student, graded with the given check statuses, with a stand-in report file."""
    storage = Storage(settings.storage_dir)
    with db.session() as s:
        student = s.scalar(select(Student).where(Student.student_id == student_id))
        sub = store_submission(s, storage, student, s.get(Assignment, "init-reg"), "lab.py", b"x = 1\n")
        folder = storage.attempt_dir(sub.id, 1, 1)
        folder.mkdir(parents=True)
        (folder / "report.pdf").write_bytes(b"%PDF-1.7 report of " + student_id.encode())
        (folder / "result.json").write_text(json.dumps({"score": score}))
        sub.status, sub.score, sub.max_score, sub.late = Status.done, score, 95.0, late
        sub.created_at = utcnow() - timedelta(minutes=minutes_ago)
        sub.report_path = storage.relative(folder / "report.pdf")
        sub.result_path = storage.relative(folder / "result.json")
        sub.check_scores = {cid: {"score": 10.0 if st == "passed" else 0.0, "max_score": 10.0, "status": st}
                            for cid, st in checks.items()}  # fmt: skip
        return sub.id


def test_every_page_and_action_needs_a_login(client, db):
    pages = ["/dashboard", "/dashboard/assignments/init-reg", "/dashboard/assignments/init-reg/overview",
             "/dashboard/queue", "/dashboard/assignments/init-reg/students/1", "/dashboard/submissions/x/report.pdf",
             "/dashboard/assignments/init-reg/export.csv", "/dashboard/assignments/init-reg/reports.zip"]  # fmt: skip
    for path in pages:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/dashboard"), path
    r = client.get("/dashboard/assignments/init-reg/rows/1", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.headers["hx-redirect"].startswith("/login")
    token = csrf_of(client.get("/login").text)
    for path in [
        "/dashboard/assignments",
        "/dashboard/assignments/init-reg/regrade",
        "/dashboard/submissions/x/regrade",
    ]:
        r = client.post(path, data={"csrf_token": token, "id": "x"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    (student_token,) = enroll(db, 1)  # a student's API token opens nothing here
    r = client.get("/dashboard", headers={"Authorization": f"Bearer {student_token}"}, follow_redirects=False)
    assert r.status_code == 303


def test_login_logout_and_wrong_passwords(client, prof):
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"email": PROF["email"], "password": "nope", "csrf_token": token})
    assert r.status_code == 401 and "Wrong email or password" in r.text
    csrf = login(client)
    assert client.get("/dashboard").status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.headers["location"] == "/login"
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_posts_without_the_csrf_token_are_refused(client, prof):
    login(client)
    for data in ({"id": "lab2"}, {"id": "lab2", "csrf_token": "forged"}):
        r = client.post("/dashboard/assignments", data=data)
        assert r.status_code == 403 and "reload the page" in r.json()["detail"]
    r = client.post("/login", data={**PROF, "csrf_token": "forged"})
    assert r.status_code == 403


def test_create_an_assignment_from_a_file_and_import_its_roster(client, db, prof):
    csrf = login(client)
    r = client.post("/dashboard/assignments", data={"csrf_token": csrf, "id": "lab2", "deadline": "2026-12-01T23:59",
                                                     "counting": "best"},
                    files={"rubric": ("tiny.toml", TINY.read_bytes())})  # fmt: skip
    assert r.status_code == 200 and "Assignment lab2 created" in r.text
    with db.session() as s:
        a = s.get(Assignment, "lab2")
        assert (a.title, a.counting, a.deadline is not None) == ("Initialization & regularization (service tests)",
                                                                 "best", True)  # fmt: skip
    r = client.post("/dashboard/assignments", data={"csrf_token": csrf, "id": "lab3"},
                    files={"rubric": ("bad.toml", b"id = 'x'\n")})  # fmt: skip
    assert "bad.toml is invalid" in r.text
    r = client.post("/dashboard/assignments/lab2/roster", data={"csrf_token": csrf},
                    files={"csv_file": ("r.csv", b"student_id,name\ns1,Ada\ns2,Alan\n")})  # fmt: skip
    tokens = re.findall(r"<code>(lg_[^<]+)</code>", r.text)
    assert len(tokens) == 2 and "Download tokens.csv" in r.text
    me = client.get("/api/assignments", headers={"Authorization": f"Bearer {tokens[0]}"}).json()
    assert [a["id"] for a in me["assignments"]] == ["lab2"]
    r = client.post("/dashboard/assignments/lab2/roster", data={"csrf_token": csrf},
                    files={"csv_file": ("r.csv", b"id,name\n1,A\n")})  # fmt: skip
    assert "no column student_id" in r.text


def test_the_grade_table_counts_filters_sorts_and_searches(client, db, settings, prof):
    enroll(db, 4)  # s0..s3
    graded(db, settings, "s0", 80, {"loss_at_init": "passed", "dropout": "failed"}, minutes_ago=10)
    graded(db, settings, "s0", 60, {"loss_at_init": "failed", "dropout": "failed"}, minutes_ago=5, late=True)
    graded(db, settings, "s1", 95, {"loss_at_init": "passed", "dropout": "passed"})
    graded(db, settings, "s2", 20, {"loss_at_init": "error", "dropout": "failed"})
    csrf = login(client)

    def shown(**params) -> list[str]:
        html = client.get("/dashboard/assignments/init-reg", params=params).text
        return re.findall(r'data-student="([^"]+)"', html)

    assert shown() == ["s0", "s1", "s2", "s3"]  # by name
    assert shown(sort="total", desc="true") == ["s1", "s0", "s2", "s3"]  # s0 counts its latest (60); s3 has none
    assert shown(filter="late") == ["s0"]
    assert shown(filter="not_submitted") == ["s3"]
    assert shown(filter="failed_check") == ["s0", "s2"]
    assert shown(filter="errors") == ["s2"]
    assert shown(q="STUDENT S1") == ["s1"]
    client.post("/dashboard/assignments/init-reg/settings", data={"csrf_token": csrf, "counting": "best"})
    assert shown(sort="total", desc="true") == ["s1", "s0", "s2", "s3"]
    html = client.get("/dashboard/assignments/init-reg").text
    assert ">80</b>" in html  # with 'best', s0's 80 counts


def test_live_rows_poll_and_a_student_page_shows_every_submission(client, db, settings, prof):
    enroll(db, 2)
    sid = graded(db, settings, "s0", 50, {"loss_at_init": "passed"})
    with db.session() as s:
        student = s.scalar(select(Student).where(Student.student_id == "s1"))
        store_submission(s, Storage(settings.storage_dir), student, s.get(Assignment, "init-reg"), "lab.py", b"x=1\n")
    csrf = login(client)
    html = client.get("/dashboard/assignments/init-reg").text
    assert html.count('hx-trigger="every 2s"') == 1  # only the queued one polls
    with db.session() as s:
        s0 = s.scalar(select(Student).where(Student.student_id == "s0")).id
    page = client.get(f"/dashboard/assignments/init-reg/students/{s0}").text
    assert f'data="/dashboard/submissions/{sid}/report.pdf"' in page
    r = client.get(f"/dashboard/submissions/{sid}/report.pdf")
    assert r.headers["content-disposition"].startswith("inline") and r.content.startswith(b"%PDF")
    r = client.get(f"/dashboard/submissions/{sid}/report.pdf?download=true")
    assert r.headers["content-disposition"].startswith("attachment")
    r = client.post(f"/dashboard/submissions/{sid}/regrade", data={"csrf_token": csrf})
    assert "queued for regrading" in r.text
    with db.session() as s:
        assert (s.get(Submission, sid).generation, s.get(Submission, sid).status) == (2, Status.queued)


def test_exports_and_overview(client, db, settings, prof):
    enroll(db, 3)
    with db.session() as s:
        s.scalar(select(Student).where(Student.student_id == "s0")).email = "s0@example.org"
    graded(db, settings, "s0", 80, {"loss_at_init": "passed", "dropout": "failed"})
    graded(db, settings, "s1", 30, {"loss_at_init": "failed", "dropout": "failed"})
    login(client)
    rows = list(csv.DictReader(io.StringIO(client.get("/dashboard/assignments/init-reg/export.csv").text)))
    assert [(r["student_id"], r["score"], r["status"], r["loss_at_init"]) for r in rows] == [
        ("s0", "80", "done", "10"), ("s1", "30", "done", "0"), ("s2", "", "not submitted", "")]  # fmt: skip
    moodle = client.get("/dashboard/assignments/init-reg/export.csv?format=moodle").text.splitlines()
    assert moodle == [
        "ID number,Email address,Full name,Initialization & regularization",
        "s0,s0@example.org,Student s0,80",
        "s1,,Student s1,30",
        "s2,,Student s2,",
    ]  # fmt: skip (every roster row; no graded submission: an empty cell)
    z = zipfile.ZipFile(io.BytesIO(client.get("/dashboard/assignments/init-reg/reports.zip").content))
    assert sorted(z.namelist()) == ["s0_Student_s0.pdf", "s1_Student_s1.pdf"]
    assert z.read("s1_Student_s1.pdf") == b"%PDF-1.7 report of s1"
    html = client.get("/dashboard/assignments/init-reg/overview").text
    assert html.count("data:image/svg+xml;base64,") == 2
    failing = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+) / (\d+)", html)
    assert failing[0] == ("Part 3: dropout", "0", "2") and ("Loss at initialization", "1", "2") in failing


def test_queue_page_without_workers_says_so(client, prof):
    login(client)
    html = client.get("/dashboard/queue").text
    assert "No worker answers" in html and 'href="/dashboard/assignments/init-reg"' in html


# -- sections: the lab's parts, stored with each graded submission (revision 0006) ---------------------------------
SECTION_POINTS = {"part1": 27.5, "part2": 30.0, "part3": 12.25, "makemore": 0.0}


def result_with_sections(points: dict[str, float]) -> GradeResult:
    """A GradeResult as the grader writes it, without running a grading: the default assignment's sections with
    the given points, and one check."""
    spec = load_assignment()
    sections = [SectionScore(id=s.id, title=s.title, score=points[s.id], max_score=s.points, checks=[])
                for s in spec.sections]  # fmt: skip
    check = CheckResult(id="loss_at_init", title="Loss at initialization", status="passed", message="ok",
                        score=spec.max_points("loss_at_init"), max_score=spec.max_points("loss_at_init"))  # fmt: skip
    now = utcnow()
    return GradeResult(
        grader_version="test", assignment_id=spec.id, assignment_title=spec.title, started_at=now, finished_at=now,
        submission=SubmittedFile(filename="lab.py", sha256="0" * 64, size_bytes=6), seconds=1.0, device="cpu",
        seed=spec.seed, fast_mode=False, isolation=IsolationInfo(method="test", network_isolated=True,
        filesystem="test", limits={}), datasets=[], checks=[check], sections=sections,
        score=sum(points.values()), max_score=sum(s.max_score for s in sections),
    )  # fmt: skip


def graded_by_a_worker(db, settings, monkeypatch, student_id: str, result: GradeResult) -> str:
    """A submission that goes the worker's way once graded: claimed, its outputs stored by jobs.store_outputs (a
    stand-in for the PDF), finished."""

    def render_pdf(result: GradeResult, path: Path) -> Path:
        path.write_bytes(b"%PDF-1.7 stand-in")
        return path

    monkeypatch.setattr(jobs, "render_pdf", render_pdf)
    storage = Storage(settings.storage_dir)
    with db.session() as s:
        student = s.scalar(select(Student).where(Student.student_id == student_id))
        sid = store_submission(s, storage, student, s.get(Assignment, "init-reg"), "lab.py", b"x = 1\n").id
    c = claim(db, sid, 1, "test-worker", 60)
    out = storage.attempt_dir(sid, c.generation, c.attempt)
    out.mkdir(parents=True)
    assert finish(db, c, Status.done, **jobs.store_outputs(storage, out, result))
    return sid


def section_cells(html: str) -> dict[str, list[tuple[str, str]]]:
    """Each grade row's section cells: student id -> [(section id, points shown)]."""
    rows = re.finditer(r'<tr id="row-\d+" data-student="([^"]+)".*?</tr>', html, re.S)
    cell = r'<td class="num section" data-section="([^"]+)">([^<]*)</td>'
    return {row.group(1): re.findall(cell, row.group(0)) for row in rows}


def test_a_graded_submissions_sections_show_in_the_grade_table_the_student_page_and_the_csv(
    client, db, settings, prof, monkeypatch
):
    enroll(db, 3)  # s0 graded now, s1 graded before sections were stored, s2 without a submission
    sid = graded_by_a_worker(db, settings, monkeypatch, "s0", result_with_sections(SECTION_POINTS))
    graded(db, settings, "s1", 40, {"loss_at_init": "passed"})  # section_scores NULL, as before revision 0006
    spec = load_assignment()
    titles = {sec.id: sec.title for sec in spec.sections}
    with db.session() as s:
        stored = s.get(Submission, sid)
        assert stored.section_scores == {
            "part1": {"title": titles["part1"], "score": 27.5, "max_score": 30.0},
            "part2": {"title": titles["part2"], "score": 30.0, "max_score": 30.0},
            "part3": {"title": titles["part3"], "score": 12.25, "max_score": 40.0},
            "makemore": {"title": titles["makemore"], "score": 0.0, "max_score": 40.0},
        }
        assert stored.score == 69.75 and stored.check_scores["loss_at_init"]["status"] == "passed"
        pks = {st.student_id: st.id for st in s.scalars(select(Student))}
    login(client)

    html = client.get("/dashboard/assignments/init-reg").text
    heads = re.findall(r'<th class="num[^"]*" title="([^"]+)"(?: data-section="([^"]+)")?>[^<]*<br><span '
                       r'class="muted">/([^<]+)</span>', html)  # fmt: skip
    assert [(sec, points) for _, sec, points in heads[:5]] == [
        ("part1", "30"), ("part2", "30"), ("part3", "40"), ("makemore", "40"),
        ("", f"{spec.max_points('loss_at_init'):g}")]  # fmt: skip
    assert heads[0][0] == titles["part1"] and heads[4][0] == "Loss at initialization"  # sections, then checks
    cells = section_cells(html)
    assert cells["s0"] == [("part1", "27.5"), ("part2", "30"), ("part3", "12.25"), ("makemore", "0")]
    assert cells["s1"] == cells["s2"] == [("part1", ""), ("part2", ""), ("part3", ""), ("makemore", "")]
    row = client.get(f"/dashboard/assignments/init-reg/rows/{pks['s0']}").text  # the row htmx polls
    assert section_cells(row)["s0"] == cells["s0"]

    page = client.get(f"/dashboard/assignments/init-reg/students/{pks['s0']}").text
    shown = re.findall(r'<tr data-section="([^"]+)"><td>[^<]+</td><td class="num">([^<]*)</td>', page)
    assert shown == [("part1", "27.5 / 30"), ("part2", "30 / 30"), ("part3", "12.25 / 40"), ("makemore", "0 / 40")]
    assert titles["part3"] in page and "Graded before sections" not in page
    page = client.get(f"/dashboard/assignments/init-reg/students/{pks['s1']}").text
    shown = re.findall(r'<tr data-section="([^"]+)"><td>[^<]+</td><td class="num">([^<]*)</td>', page)
    assert shown == [("part1", " / 30"), ("part2", " / 30"), ("part3", " / 40"), ("makemore", " / 40")]
    assert "Graded before sections were recorded" in page

    text = client.get("/dashboard/assignments/init-reg/export.csv").text
    header = text.splitlines()[0].split(",")
    assert header[10:19] == ["score", "auto_score", "written", "max_score", "part1", "part2", "part3", "makemore",
                             "loss_at_init"]  # fmt: skip
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(text))}
    manual = spec.manual_points  # max_score counts the written answers too (none graded here)
    assert [rows["s0"][k] for k in ("score", "max_score", "part1", "part2", "part3", "makemore")] == [
        "69.75", f"{140 + manual:g}", "27.5", "30", "12.25", "0"]  # fmt: skip
    assert [rows[s]["part1"] + rows[s]["makemore"] for s in ("s1", "s2")] == ["", ""]
    assert rows["s1"]["score"] == "40"
    moodle = client.get("/dashboard/assignments/init-reg/export.csv?format=moodle").text.splitlines()
    assert moodle == ["ID number,Email address,Full name,Initialization & regularization",
                      "s0,,Student s0,69.75", "s1,,Student s1,40", "s2,,Student s2,"]  # fmt: skip


def test_a_database_with_a_graded_submission_upgrades_and_shows_its_sections_empty(tmp_path, database_url):
    settings = make_settings(tmp_path, database_url)
    url = settings.sqlalchemy_url
    upgrade(url, "0005")  # before section_scores
    with Database(url) as db:
        enroll(db, 1)
        with db.engine.begin() as c:  # the row as a worker of revision 0005 stored it
            c.execute(sa.text(
                "INSERT INTO submissions (id, student_pk, assignment_id, filename, sha256, size_bytes, created_at, "
                "late, status, generation, attempt, queued_at, progress, step, score, max_score, check_scores) "
                "SELECT 'sub-old', id, 'init-reg', 'lab.py', :sha, 6, :t, :no, 'done', 1, 1, :t, 1.0, '', 50, 95, "
                ":checks FROM students"
            ).bindparams(sa.bindparam("checks", type_=sa.JSON)),
                {"sha": "0" * 64, "t": utcnow(), "no": False,
                 "checks": {"loss_at_init": {"score": 10.0, "max_score": 10.0, "status": "passed"}}})  # fmt: skip
    upgrade(url)
    with Database(url) as db, db.session() as s:
        old = s.get(Submission, "sub-old")
        assert (old.score, old.section_scores, old.check_scores["loss_at_init"]["score"]) == (50, None, 10.0)
        s.add(Instructor(email=PROF["email"], password_hash=hash_password(PROF["password"])))
        pk = old.student_pk
    try:
        with TestClient(create_app(settings)) as client:
            login(client)
            html = client.get("/dashboard/assignments/init-reg").text
            assert section_cells(html) == {"s0": [("part1", ""), ("part2", ""), ("part3", ""), ("makemore", "")]}
            assert ">50</b>" in html
            page = client.get(f"/dashboard/assignments/init-reg/students/{pk}").text
            assert "Graded before sections were recorded" in page and 'data-section="part1"' in page
            rows = list(csv.DictReader(io.StringIO(client.get("/dashboard/assignments/init-reg/export.csv").text)))
            assert [(r["score"], r["part1"], r["makemore"], r["loss_at_init"]) for r in rows] == [("50", "", "", "10")]
    finally:
        redis_do("delete", settings.queue)
    # and back: revision 0006 downgrades (and upgrades again) on this backend
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
        with engine.connect() as connection:
            assert "section_scores" not in {c["name"] for c in sa.inspect(connection).get_columns("submissions")}
    finally:
        engine.dispose()
    upgrade(url)
    with Database(url) as db, db.session() as s:
        assert s.get(Submission, "sub-old").section_scores is None
