"""The grade table's arithmetic and its exports: manual points of the written answers in every total, the exported
grade of a student whose latest submission is pending, fast-mode grades, refused filters, the class median, and
Canvas's gradebook. In-process, like test_dashboard.py, whose helpers it uses."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from grader.assignment import load_assignment
from service.models import Assignment, ManualGrade, Status, Student, Submission, utcnow

from .kit import enroll
from .test_dashboard import graded, login, prof  # noqa: F401 (a fixture)

GRADES = "/dashboard/assignments/init-reg"
MANUAL = load_assignment().manual_points  # 18: the written questions of the built-in lab


def pk_of(db, student_id: str) -> int:
    with db.session() as s:
        return s.scalar(select(Student.id).where(Student.student_id == student_id))


def hand_grade(db, student_id: str, points: dict[str, float]) -> None:
    with db.session() as s:
        pk = s.scalar(select(Student.id).where(Student.student_id == student_id))
        for qid, p in points.items():
            s.add(ManualGrade(student_pk=pk, assignment_id="init-reg", question_id=qid, points=p, grader="prof"))


def row_html(html: str, student_id: str) -> str:
    return re.search(rf'<tr id="row-\d+" data-student="{student_id}".*?</tr>', html, re.S).group(0)


def total_cell(html: str, student_id: str) -> str:
    return re.search(r"<td class=\"num\" data-total><b>([^<]*)</b>", row_html(html, student_id)).group(1)


def written_cell(html: str, student_id: str) -> str:
    return re.search(r"<td class=\"num\" data-written><a href=\"([^\"]+)\"[^>]*>([^<]*)</a>",
                     row_html(html, student_id)).groups()  # fmt: skip


def export(client, fmt: str = "generic") -> list[dict]:
    return list(csv.DictReader(io.StringIO(client.get(f"{GRADES}/export.csv?format={fmt}").text)))


def test_manual_points_count_in_every_total_and_survive_a_regrade(client, db, settings, prof):  # noqa: F811
    enroll(db, 3)  # s0 graded and hand-graded, s1 hand-graded only, s2 nothing
    sid = graded(db, settings, "s0", 60, {"loss_at_init": "passed"}, minutes_ago=5)
    hand_grade(db, "s0", {"sigma_regimes": 4, "breaking_training": 1.5})
    hand_grade(db, "s1", {"mc_ensemble": 2})
    csrf = login(client)
    s0 = pk_of(db, "s0")

    html = client.get(GRADES).text
    assert f'href="{GRADES}/answers"' in html and "Grade written answers" in html
    assert total_cell(html, "s0") == "65.5" and total_cell(html, "s1") == "2" and total_cell(html, "s2") == ""
    assert written_cell(html, "s0") == (f"{GRADES}/answers/{s0}", f"5.5 / {MANUAL:g}")
    assert written_cell(html, "s2")[1] == f"— / {MANUAL:g}"
    page = client.get(f"{GRADES}/students/{s0}").text
    assert f'href="{GRADES}/answers/{s0}"' in page and "<b>65.5</b>total / " + f"{95 + MANUAL:g}" in page

    rows = {r["student_id"]: r for r in export(client)}
    assert [rows["s0"][k] for k in ("score", "auto_score", "written", "max_score")] == [
        "65.5", "60", "5.5", f"{95 + MANUAL:g}"]  # fmt: skip
    assert (rows["s0"]["q_sigma_regimes"], rows["s0"]["q_breaking_training"], rows["s0"]["q_mc_ensemble"]) == (
        "4", "1.5", "")  # fmt: skip
    assert [rows["s1"][k] for k in ("score", "auto_score", "written")] == ["2", "", "2"]
    assert rows["s2"]["score"] == rows["s2"]["written"] == ""
    moodle = {r["ID number"]: r["Initialization & regularization"] for r in export(client, "moodle")}
    assert moodle == {"s0": "65.5", "s1": "2", "s2": ""}
    canvas = client.get(f"{GRADES}/export.csv?format=canvas").text.splitlines()
    assert "Student s0,,s0,,,65.5" in canvas

    # a new submission, graded: its automated points replace the old ones, the manual points stay
    graded(db, settings, "s0", 70, {"loss_at_init": "passed"})
    assert total_cell(client.get(GRADES).text, "s0") == "75.5"
    # regrading it (a new generation): while it waits, and once graded again, the manual points stay in the total
    with db.session() as s:
        latest = s.scalars(select(Submission).where(Submission.student_pk == s0, Submission.id != sid)).one().id
    client.post(f"/dashboard/submissions/{latest}/regrade", data={"csrf_token": csrf})
    with db.session() as s:
        assert (s.get(Submission, latest).generation, s.get(Submission, latest).status) == (2, Status.queued)
    assert total_cell(client.get(GRADES).text, "s0") == "75.5"
    assert {r["student_id"]: r for r in export(client)}["s0"]["pending"] == "yes"
    with db.session() as s:
        sub = s.get(Submission, latest)
        sub.status, sub.score = Status.done, 50.0
    html = client.get(GRADES).text
    assert total_cell(html, "s0") == "55.5" and written_cell(html, "s0")[1] == f"5.5 / {MANUAL:g}"
    assert {r["student_id"]: r for r in export(client)}["s0"]["score"] == "55.5"
    overview = client.get(f"{GRADES}/overview").text
    assert re.search(r'id="written"><b>2</b>students with written grades', overview)  # s0 and s1 have written grades
    assert f"<b>55.5</b>mean score / {95 + MANUAL:g}" in overview  # s0 the only one graded: 50 + 5.5


def add_students_with_work(db, assignment: str, n: int) -> None:
    """n students on a new assignment, each with two graded submissions (checks and sections filled), one queued
    submission every third student, and two manual grades."""
    from datetime import timedelta

    from service.models import utcnow

    with db.session() as s:
        s.add(Assignment(id=assignment, title=f"{n} students"))
    enroll(db, n, assignment, prefix=f"{assignment}-")
    with db.session() as s:
        pks = s.scalars(select(Student.id).where(Student.student_id.startswith(f"{assignment}-"))).all()
        for i, pk in enumerate(pks):
            checks = {"loss_at_init": {"score": 5.0, "max_score": 5.0, "status": "passed"}}
            sections = {"part1": {"title": "Part 1", "score": 20.0, "max_score": 30.0}}
            for k in range(2 + (i % 3 == 0)):
                done = k < 2
                s.add(Submission(id=f"{assignment}-{pk}-{k}", student_pk=pk, assignment_id=assignment,
                                 filename="lab.py", sha256="0" * 64, size_bytes=10,
                                 created_at=utcnow() - timedelta(minutes=10 - k),
                                 status=Status.done if done else Status.queued, score=50.0 + k if done else None,
                                 max_score=95.0 if done else None, check_scores=checks,
                                 section_scores=sections))  # fmt: skip
            for qid in ("sigma_regimes", "mc_ensemble"):
                s.add(ManualGrade(student_pk=pk, assignment_id=assignment, question_id=qid, points=1.0, grader="p"))


def count_statements(client, url: str) -> int:
    import sqlalchemy as sa

    engine = client.app.state.labgrader.db.engine
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        r = client.get(url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert r.status_code == 200, (url, r.text[:300])
    return len(seen)


def test_the_pages_run_as_many_sql_statements_for_30_students_as_for_3(client, db, prof):  # noqa: F811
    add_students_with_work(db, "small", 3)
    add_students_with_work(db, "big", 30)
    login(client)
    for page in ("", "/overview", "/export.csv", "/export.csv?format=moodle", "/live?since=0"):
        small = count_statements(client, f"/dashboard/assignments/small{page}")
        big = count_statements(client, f"/dashboard/assignments/big{page}")
        assert small == big <= 8, (page, small, big)  # /live: login, assignment, moved rows, table (4), live?
    assert "<b>53</b>" in client.get("/dashboard/assignments/big").text  # 51 + 2 written: the latest counts
    before = count_statements(client, "/dashboard")
    add_students_with_work(db, "more", 5)
    assert count_statements(client, "/dashboard") == before  # one GROUP BY for students, one for submissions
    html = client.get("/dashboard").text
    big_row = re.search(r'href="/dashboard/assignments/big">big</a>.*?</tr>', html, re.S).group(0)
    assert re.findall(r"<td class=\"num\">(\d+)</td>", big_row) == [f"{140 + MANUAL:g}", "30", "60", "10", "0"]


def test_one_poll_per_table_while_a_row_is_live(client, db, settings, prof):  # noqa: F811
    enroll(db, 3)
    graded(db, settings, "s0", 50, {"loss_at_init": "passed"})
    from service.intake import store_submission
    from service.storage import Storage

    with db.session() as s:
        student = s.scalar(select(Student).where(Student.student_id == "s1"))
        queued = store_submission(s, Storage(settings.storage_dir), student, s.get(Assignment, "init-reg"), "lab.py",
                                  b"x = 1\n").id  # fmt: skip
    s1 = pk_of(db, "s1")
    login(client)
    html = client.get(GRADES).text
    assert html.count("hx-trigger") == 1 and "/rows/" not in html  # no row polls by itself
    poll = re.search(r'<div id="live" hidden hx-get="([^"]+)" hx-trigger="every 2s" hx-swap="outerHTML">', html)
    r = client.get(poll.group(1))
    rows = re.findall(r'<template><tr id="row-(\d+)"[^>]*hx-swap-oob="true">', r.text)
    # s1 is queued: still live (a row queued or finished within the poll's second of overlap may come along)
    assert str(s1) in rows and 'hx-trigger="every 2s"' in r.text
    from datetime import timedelta

    with db.session() as s:  # queued an hour ago and still waiting: polled for, but its row is not sent again
        s.get(Submission, queued).queued_at -= timedelta(hours=1)
        s.scalar(select(Submission).where(Submission.id != queued)).queued_at -= timedelta(hours=1)
    r = client.get(re.search(r'hx-get="([^"]+)"', r.text).group(1))
    assert "<template>" not in r.text and 'hx-trigger="every 2s"' in r.text
    with db.session() as s:
        sub = s.get(Submission, queued)
        sub.status, sub.score, sub.max_score, sub.finished_at = Status.done, 42.0, 95.0, utcnow()
    nxt = re.search(r'hx-get="([^"]+)"', r.text).group(1)
    r = client.get(nxt)
    assert str(s1) in re.findall(r'<template><tr id="row-(\d+)"', r.text)  # the row that just finished
    assert "<b>42</b>" in r.text and "hx-trigger" not in r.text  # nothing is live: the poller stops
    assert client.get(GRADES).text.count("hx-trigger") == 0


def submit(db, settings, student_id: str, status: Status = Status.queued, content: bytes = b"x = 2\n") -> str:
    """A newer submission of the student, left queued (or set to `status` without a score)."""
    from service.intake import store_submission
    from service.storage import Storage

    with db.session() as s:
        student = s.scalar(select(Student).where(Student.student_id == student_id))
        sub = store_submission(s, Storage(settings.storage_dir), student, s.get(Assignment, "init-reg"), "lab.py",
                               content)  # fmt: skip
        sub.status = status
        if status == Status.failed:
            sub.summary = "The file defines no model: nothing could be graded."
        return sub.id


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two(client, db, settings, prof):  # noqa: F811
    from service.dashboard.overview import median

    assert (median([]), median([3.0]), median([95.0, 0.0]), median([1.0, 2.0, 3.0, 10.0])) == (None, 3.0, 47.5, 2.5)
    enroll(db, 2)
    graded(db, settings, "s0", 0, {"loss_at_init": "failed"})
    graded(db, settings, "s1", 95, {"loss_at_init": "passed"})
    login(client)
    assert re.search(r'id="median"><b>47.5</b>', client.get(f"{GRADES}/overview").text)


def test_exports_keep_every_student_with_the_last_graded_submission_and_flag_pending_ones(
    client,
    db,
    settings,
    prof,  # noqa: F811
):
    enroll(db, 4)
    graded(db, settings, "s0", 80, {"loss_at_init": "passed"}, minutes_ago=10)
    submit(db, settings, "s0")  # s0: graded 80, then a newer one waits
    graded(db, settings, "s1", 60, {"loss_at_init": "failed"}, minutes_ago=10)
    submit(db, settings, "s1", Status.failed)  # s1: graded 60, then a newer one failed
    submit(db, settings, "s2")  # s2: only a queued one; s3: nothing
    login(client)
    rows = {r["student_id"]: r for r in export(client)}
    assert [(s, rows[s]["score"], rows[s]["status"], rows[s]["pending"]) for s in ("s0", "s1", "s2", "s3")] == [
        ("s0", "80", "queued", "yes"), ("s1", "60", "failed", "no"), ("s2", "", "queued", "yes"),
        ("s3", "", "not submitted", "no")]  # fmt: skip
    assert rows["s0"]["loss_at_init"] == "10" and rows["s1"]["submission_id"] != ""  # the graded one's columns
    moodle = client.get(f"{GRADES}/export.csv?format=moodle").text.splitlines()
    assert moodle[1:] == ["s0,,Student s0,80", "s1,,Student s1,60", "s2,,Student s2,", "s3,,Student s3,"]
    html = client.get(GRADES).text
    assert re.search(r'id="ungraded-note">2 students have no graded submission', html)
    assert "Every student of the roster has a row" in html
    client.post(f"{GRADES}/settings", data={"csrf_token": csrf_of(client), "counting": "best"})
    assert {r["student_id"]: r for r in export(client)}["s0"]["score"] == "80"


def csrf_of(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/dashboard").text).group(1)


def test_fast_grades_are_flagged_and_gradebook_exports_refuse_them(client, db, settings, prof):  # noqa: F811
    enroll(db, 2)
    sid = graded(db, settings, "s0", 90, {"loss_at_init": "passed"})
    graded(db, settings, "s1", 50, {"loss_at_init": "passed"})
    with db.session() as s:
        s.get(Submission, sid).fast = True
    login(client)
    html = client.get(GRADES).text
    assert "fast budgets — not a real grade" in row_html(html, "s0")
    assert "fast budgets" not in row_html(html, "s1")
    assert "1 graded with the fast budgets" in html
    assert "fast budgets — not a real grade" in client.get(f"{GRADES}/students/{pk_of(db, 's0')}").text
    rows = {r["student_id"]: r for r in export(client)}
    assert (rows["s0"]["fast"], rows["s1"]["fast"]) == ("yes", "no")
    for fmt in ("moodle", "canvas"):
        r = client.get(f"{GRADES}/export.csv?format={fmt}")
        assert r.status_code == 409 and "text/html" in r.headers["content-type"]
        assert "1 student is graded with the fast budgets" in r.text and "Student s0 (s0)" in r.text
    with db.session() as s:
        s.get(Submission, sid).fast = False  # regraded with the real budgets
    assert client.get(f"{GRADES}/export.csv?format=moodle").status_code == 200


def test_an_unknown_filter_sort_or_format_is_refused_with_the_allowed_values(client, db, prof):  # noqa: F811
    enroll(db, 1)
    login(client)
    r = client.get(GRADES, params={"filter": "lat"})
    assert r.status_code == 400 and "Unknown filter=&#39;lat&#39;" in r.text
    assert "&#39;failed_check&#39;, &#39;late&#39;, &#39;not_submitted&#39;, &#39;errors&#39;" in r.text
    assert "data-student" not in r.text and f'href="{GRADES}">Back to the grade table' in r.text  # not everyone
    r = client.get(GRADES, params={"sort": "score"})
    assert r.status_code == 400 and "Unknown sort=&#39;score&#39;" in r.text and "&#39;total&#39;" in r.text
    r = client.get(f"{GRADES}/export.csv", params={"format": "blackboard"})
    assert r.status_code == 400 and "&#39;canvas&#39;" in r.text
    assert client.get(GRADES, params={"filter": "late", "sort": "written"}).status_code == 200


def test_the_student_page_tells_submissions_apart(client, db, settings, prof):  # noqa: F811
    import hashlib

    enroll(db, 1)
    graded(db, settings, "s0", 40, {"loss_at_init": "passed"}, minutes_ago=5)
    failed = submit(db, settings, "s0", Status.failed, b"print('hello')\n")
    login(client)
    page = client.get(f"{GRADES}/students/{pk_of(db, 's0')}").text
    rows = re.findall(r'<tr data-submission="([^"]+)"[^>]*>(.*?)</tr>', page, re.S)
    assert [sid for sid, _ in rows][0] == failed  # newest first
    cells = rows[0][1]
    assert "lab.py" in cells and "15 B" in cells and hashlib.sha256(b"print('hello')\n").hexdigest()[:10] in cells
    assert "failed" in cells and "Regrade" in cells
    assert "nothing could be graded" in page  # the failed grading's summary
    assert page.index('id="submissions"') < page.index("<h2>Report")  # the table above the viewer


def test_canvas_gradebook_csv(client, db, settings, prof):  # noqa: F811
    from service.dashboard.grades import check_columns

    enroll(db, 3)
    with db.session() as s:
        s.scalar(select(Student).where(Student.student_id == "s1")).name = "Hopper, Grace"
        points = sum(c.max_points for c in check_columns(s.get(Assignment, "init-reg"))) + MANUAL
    graded(db, settings, "s0", 80.5, {"loss_at_init": "passed"})
    graded(db, settings, "s1", 30, {"loss_at_init": "failed"})
    hand_grade(db, "s1", {"sigma_regimes": 3})
    login(client)
    r = client.get(f"{GRADES}/export.csv?format=canvas")
    assert r.headers["content-disposition"] == 'attachment; filename="init-reg-grades-canvas.csv"'
    assert list(csv.reader(io.StringIO(r.text))) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Initialization & regularization (init-reg)"],
        ["Points Possible", "", "", "", "", f"{points:g}"],
        ["Student s0", "", "s0", "", "", "80.5"],
        ["Hopper, Grace", "", "s1", "", "", "33"],
        ["Student s2", "", "s2", "", "", ""],
    ]


def test_the_live_poll_needs_a_login(client, db):
    r = client.get(f"{GRADES}/live?since=0", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.headers["hx-redirect"].startswith("/login")
    r = client.get(f"{GRADES}/live?since=0", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/dashboard")


def test_the_student_page_polls_once_while_a_submission_waits_then_reloads(client, db, settings, prof):  # noqa: F811
    enroll(db, 2)
    graded(db, settings, "s0", 40, {"loss_at_init": "passed"}, minutes_ago=5)
    queued = submit(db, settings, "s0")
    graded(db, settings, "s1", 30, {"loss_at_init": "passed"})
    login(client)
    s0 = pk_of(db, "s0")
    page = client.get(f"{GRADES}/students/{s0}").text
    assert page.count("hx-trigger") == 1  # one poller for the page, none per submission
    poll = re.search(r'<div id="student-live" hidden hx-get="([^"]+)" hx-trigger="every 2s" hx-swap="none">', page)
    assert poll and poll.group(1).startswith(f"{GRADES}/students/{s0}/live?show=")
    r = client.get(poll.group(1))
    assert r.status_code == 200 and "hx-refresh" not in r.headers
    assert '<div class="stats" id="totals" hx-swap-oob="true">' in r.text
    assert '<div class="tablewrap" id="submissions-wrap" hx-swap-oob="true">' in r.text
    assert re.search(rf'<tr data-submission="{queued}">.*?badge st queued', r.text, re.S)
    assert 'class="shown"' in r.text and 'name="csrf_token"' in r.text  # the viewed report marked; Regrade works
    with db.session() as s:
        sub = s.get(Submission, queued)
        sub.status, sub.score, sub.max_score, sub.finished_at = Status.done, 42.0, 95.0, utcnow()
    r = client.get(poll.group(1))
    assert r.status_code == 200 and r.headers["hx-refresh"] == "true" and r.text == ""  # reload: points, report
    assert "student-live" not in client.get(f"{GRADES}/students/{s0}").text  # nothing live: no poll
    assert "student-live" not in client.get(f"{GRADES}/students/{pk_of(db, 's1')}").text
    assert client.get(f"{GRADES}/students/999999/live").status_code == 404


def test_written_answers_that_wait_for_a_hand_grade_say_so(client, db, settings, prof):  # noqa: F811
    from service.models import Answer

    enroll(db, 3)
    hand_grade(db, "s0", {"sigma_regimes": 4})
    with db.session() as s:
        for sid, qid, text in (("s0", "sigma_regimes", "a"), ("s0", "mc_ensemble", "b"), ("s1", "mc_ensemble", None),
                               ("s2", "sigma_regimes", "c"), ("s2", "mc_ensemble", "d")):  # fmt: skip
            pk = s.scalar(select(Student.id).where(Student.student_id == sid))
            s.add(Answer(student_pk=pk, assignment_id="init-reg", question_id=qid, draft="x", text=text))
    login(client)
    html = client.get(GRADES).text
    assert "1 to grade" in row_html(html, "s0") and written_cell(html, "s0")[1] == f"4 / {MANUAL:g}"
    assert "to grade" not in row_html(html, "s1")  # a draft is not an answer to grade
    assert "2 to grade" in row_html(html, "s2") and written_cell(html, "s2")[1] == f"— / {MANUAL:g}"
    assert "2 to grade" in client.get(f"{GRADES}/students/{pk_of(db, 's2')}").text


def test_the_tables_picks_in_sql_match_the_student_pages_in_python(db):
    """grade_table picks each student's counted and exported submissions with window functions (the table, /live)
    and in Python (the student page): the same ones, for either counting, whatever the mix of statuses."""
    import random
    from datetime import timedelta

    from service.dashboard.grades import grade_table

    rng = random.Random(7)
    enroll(db, 40)
    now = utcnow()
    with db.session() as s:
        pks = s.scalars(select(Student.id)).all()
        for pk in pks:
            for k in range(rng.choice([0, 1, 1, 2, 3, 5])):
                st = rng.choice([Status.done, Status.done, Status.failed, Status.queued, Status.running])
                score = (
                    rng.choice([None, 10.0, 50.0, 50.0, 90.0]) if st != Status.done else rng.choice([0.0, 50.0, 90.0])
                )
                s.add(Submission(id=f"x-{pk}-{k}", student_pk=pk, assignment_id="init-reg", filename="lab.py",
                                 sha256="0" * 64, size_bytes=1, created_at=now - timedelta(minutes=k * 7 + pk % 5),
                                 status=st, score=score, max_score=95.0))  # fmt: skip
    for counting in ("latest", "best"):
        with db.session() as s:
            a = s.get(Assignment, "init-reg")
            a.counting = counting
            table = {r.student.id: r for r in grade_table(s, a)}
            for pk in pks:
                page = grade_table(s, a, pk)[0]
                row = table[pk]
                picked = lambda r: (r.counted and r.counted.id, r.graded and r.graded.id, r.count, r.live)  # noqa: E731
                assert picked(row) == picked(page), (counting, pk, [(x.status, x.score) for x in page.submissions])
            assert {grade_table(s, a, student_pks=[pks[0]])[0].count} == {table[pks[0]].count}
