"""The grade table's arithmetic and its exports: manual points of the written answers in every total, the exported
grade of a student whose latest submission is pending, fast-mode grades, refused filters, the class median, and
Canvas's gradebook. In-process, like test_dashboard.py, whose helpers it uses."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from grader.assignment import load_assignment
from service.models import ManualGrade, Status, Student, Submission

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
    assert re.search(r'id="written"><b>2</b>', overview)  # s0 and s1 have written grades
    assert f"<b>55.5</b>mean score / {95 + MANUAL:g}" in overview  # s0 the only one graded: 50 + 5.5
