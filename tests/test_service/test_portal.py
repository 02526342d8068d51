"""The student portal over HTTP (in-process): signing in with the token, uploads with the API's checks, a
submission's status, written answers (drafts, submission, limits), each student sees only their own, and the
instructor's grading of the answers. The browser test (test_portal_browser.py) drives the same pages in Chromium."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from service.intake import store_submission
from service.models import Answer, Assignment, Instructor, ManualGrade, Status, Student, Submission, utcnow
from service.security import hash_password
from service.storage import Storage

from .kit import enroll

PROF = {"email": "prof@example.org", "password": "correct horse"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, token: str) -> str:
    form = client.get("/student")
    r = client.post("/student/login", data={"token": token, "csrf_token": csrf_of(form.text)})
    assert r.status_code == 200 and str(r.url).endswith("/student"), r.text
    return csrf_of(r.text)


def upload(client, csrf: str, name: str, data: bytes, **headers):
    return client.post("/student/assignments/init-reg/submissions", data={"csrf_token": csrf},
                       files={"file": (name, data)}, headers=headers, follow_redirects=False)  # fmt: skip


@pytest.fixture
def tokens(db):
    return enroll(db, 2)


def graded(db, settings, student_id: str, score: float) -> str:
    storage = Storage(settings.storage_dir)
    with db.session() as s:
        student = s.scalar(select(Student).where(Student.student_id == student_id))
        sub = store_submission(s, storage, student, s.get(Assignment, "init-reg"), "lab3.py", b"x = 1\n")
        folder = storage.attempt_dir(sub.id, 1, 1)
        folder.mkdir(parents=True)
        (folder / "report.pdf").write_bytes(b"%PDF-1.7 report")
        (folder / "report.html").write_text("<!doctype html><p>the report of " + student_id)
        (folder / "result.json").write_text(json.dumps({"score": score}))
        sub.status, sub.score, sub.max_score = Status.done, score, 140.0
        sub.report_path = storage.relative(folder / "report.pdf")
        sub.result_path = storage.relative(folder / "result.json")
        sub.check_scores = {"dropout": {"score": 0.0, "max_score": 32.0, "status": "failed"}}
        if score == 0:
            sub.summary = "Your file defines none of the functions the lab asks for (circle_model, ...)."
        return sub.id


def test_pages_need_a_student_session_and_posts_need_csrf(client, tokens):
    for path in ["/student/assignments/init-reg", "/student/submissions/abc", "/student/submissions/abc/status"]:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/student", path
    r = client.get("/student/submissions/abc/status", headers={"Accept": "application/json"})
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/student"
    # the sign-in form: a wrong token is refused and says what to do; no CSRF token, no sign-in
    csrf = csrf_of(client.get("/student").text)
    r = client.post("/student/login", data={"token": "lg_nope", "csrf_token": csrf})
    assert r.status_code == 401 and "not known" in r.text
    assert client.post("/student/login", data={"token": tokens[0]}).status_code == 403
    csrf = sign_in(client, tokens[0])
    assert tokens[0] not in client.get("/student").text  # the token never comes back in a page
    assert upload(client, "wrong", "lab.py", b"x = 1\n").status_code == 403
    r = client.post("/student/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/student/assignments/init-reg", follow_redirects=False).status_code == 303


def test_upload_uses_the_api_checks_and_lands_in_the_queue(client, tokens, settings, db):
    csrf = sign_in(client, tokens[0])
    page = client.get("/student/assignments/init-reg").text
    assert "20 of 20" in page and "Deadline" in page  # submissions left in the rate window
    r = upload(client, csrf, "lab3_novak.py", b"import torch\n")
    assert r.status_code == 303 and r.headers["location"].startswith("/student/submissions/")
    sub_id = r.headers["location"].rsplit("/", 1)[-1]
    with db.session() as s:
        sub = s.get(Submission, sub_id)
        assert (sub.filename, sub.status, sub.student.student_id) == ("lab3_novak.py", Status.queued, "s0")
    status = client.get(f"/student/submissions/{sub_id}/status").json()
    assert status["status"] == "queued" and status["live"] and status["links"]["self"].startswith("/student/")
    page = client.get(f"/student/submissions/{sub_id}").text
    assert "data-live" in page and "lab3_novak.py" in page
    assert "19 of 20" in client.get("/student/assignments/init-reg").text
    # the API's messages, as JSON for the page's script and as a page for a plain form
    r = upload(client, csrf, "lab.txt", b"x = 1\n", Accept="application/json")
    assert r.status_code == 415 and "not a Python file" in r.json()["detail"]
    r = upload(client, csrf, "lab.py", b"   \n")
    assert r.status_code == 422 and "is empty" in r.text and 'id="upload"' in r.text
    r = upload(client, csrf, "big.py", b"#" * (settings.max_upload_bytes + 1), Accept="application/json")
    assert r.status_code == 413
    r = upload(client, csrf, "lab.py", b"x = 2\n", Accept="application/json")
    assert r.status_code == 202 and r.json()["url"].startswith("/student/submissions/")
    # drafts handed in with the file
    client.post("/student/assignments/init-reg/answers", data={"csrf_token": csrf, "q_mc_ensemble": "K=50"})
    r = client.post("/student/assignments/init-reg/submissions", data={"csrf_token": csrf, "with_answers": "true"},
                    files={"file": ("lab.py", b"x = 3\n")}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with db.session() as s:
        assert [(a.question_id, a.text) for a in s.scalars(select(Answer))] == [("mc_ensemble", "K=50")]


def test_a_student_sees_nothing_of_another(client, tokens, settings, db):
    theirs = graded(db, settings, "s1", 12.0)
    sign_in(client, tokens[0])
    for path in ["", "/status", "/report.pdf", "/report.html", "/result.json"]:
        r = client.get(f"/student/submissions/{theirs}{path}", follow_redirects=False)
        assert r.status_code == 404, path
    assert theirs not in client.get("/student").text
    # a token reissued by the instructor ends the sessions of the old one
    with db.session() as s:
        s.scalar(select(Student).where(Student.student_id == "s0")).token_hash = "0" * 64
    assert client.get("/student/assignments/init-reg", follow_redirects=False).status_code == 303


def test_a_graded_submission_shows_points_report_and_reason(client, tokens, settings, db):
    mine = graded(db, settings, "s0", 0.0)
    sign_in(client, tokens[0])
    page = client.get(f"/student/submissions/{mine}").text
    assert 'id="summary"' in page and "defines none of the functions" in page  # the reason, at the top
    assert "data-live" not in page and "Part 3: dropout" in page and "/report.pdf?download=true" in page
    assert f'src="/student/submissions/{mine}/report.html"' in page and "sandbox" in page
    r = client.get(f"/student/submissions/{mine}/report.html")
    assert r.status_code == 200 and "sandbox" in r.headers["content-security-policy"]
    assert client.get(f"/student/submissions/{mine}/report.pdf").content.startswith(b"%PDF")
    assert client.get(f"/student/submissions/{mine}/result.json").json() == {"score": 0.0}
    assert client.get(f"/student/submissions/{mine}/status").json()["live"] is False


def test_written_answers_drafts_submission_and_limits(client, tokens, db, settings):
    csrf = sign_in(client, tokens[0])
    url = "/student/assignments/init-reg/answers"
    page = client.get("/student/assignments/init-reg").text
    assert len(re.findall(r"<textarea", page)) == 5  # one box per question of the assignment file
    r = client.post(url, data={"csrf_token": csrf, "q_sigma_regimes": "small 0.01, good 1, big 10"},
                    headers={"Accept": "application/json"})  # fmt: skip
    assert r.status_code == 200 and r.json()["submitted"] == []
    with db.session() as s:
        a = s.scalar(select(Answer).where(Answer.question_id == "sigma_regimes"))
        assert (a.draft, a.text) == ("small 0.01, good 1, big 10", None)  # a draft: not handed in
    r = client.post(url, data={"csrf_token": csrf, "q_sigma_regimes": "small 0.01, good 1, big 10",
                               "q_mc_ensemble": "<script>alert(1)</script>", "action": "submit"})  # fmt: skip
    assert r.status_code == 200 and "Your answers are submitted" in r.text
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
    with db.session() as s:
        texts = {a.question_id: (a.text, a.late) for a in s.scalars(select(Answer))}
        assert texts == {"sigma_regimes": ("small 0.01, good 1, big 10", False),
                         "mc_ensemble": ("<script>alert(1)</script>", False)}  # fmt: skip
    r = client.post(url, data={"csrf_token": csrf, "q_nope": "x"}, headers={"Accept": "application/json"})
    assert r.status_code == 422 and "no question 'nope'" in r.json()["detail"]
    json_ = {"Accept": "application/json"}
    r = client.post(url, data={"csrf_token": csrf, "q_mc_ensemble": "x" * 20_001}, headers=json_)
    assert r.status_code == 422 and "limit is 20,000" in r.json()["detail"]
    # after the deadline an answer is still taken, and marked late
    with db.session() as s:
        s.get(Assignment, "init-reg").deadline = utcnow() - timedelta(hours=1)
    client.post(url, data={"csrf_token": csrf, "q_mc_ensemble": "K = 100 is enough", "action": "submit"})
    with db.session() as s:
        late = s.scalar(select(Answer).where(Answer.question_id == "mc_ensemble"))
        assert (late.text, late.late) == ("K = 100 is enough", True)


def test_instructors_grade_answers_and_go_to_the_next_student(client, tokens, db):
    for i, token in enumerate(tokens):
        csrf = sign_in(client, token)
        client.post("/student/assignments/init-reg/answers",
                    data={"csrf_token": csrf, "q_sigma_regimes": f"answer {i}", "action": "submit"})  # fmt: skip
    with db.session() as s:
        s.add(Instructor(email=PROF["email"], password_hash=hash_password(PROF["password"])))
        first, second = (s.scalar(select(Student.id).where(Student.student_id == f"s{i}")) for i in (0, 1))
    csrf = csrf_of(client.get("/login").text)
    client.post("/login", data={**PROF, "csrf_token": csrf})
    index = client.get("/dashboard/assignments/init-reg/answers").text
    assert "<b>2</b> students wait" in index
    page = client.get(f"/dashboard/assignments/init-reg/answers/{first}").text
    assert "answer 0" in page and "answer 1" not in page and 'data-points="4"' in page
    csrf = csrf_of(page)
    url = f"/dashboard/assignments/init-reg/answers/{first}"
    r = client.post(url, data={"csrf_token": csrf, "points_sigma_regimes": "5"}, follow_redirects=False)
    assert r.status_code == 303 and "from 0 to 4" in r.headers["location"].replace("+", " ")
    r = client.post(url, data={"csrf_token": csrf, "points_sigma_regimes": "3,5", "comment_sigma_regimes": "no ln 2",
                               "go": "next"}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"].startswith(f"/dashboard/assignments/init-reg/answers/{second}?")
    with db.session() as s:
        g = s.scalar(select(ManualGrade))
        assert (g.student_pk, g.question_id, g.points, g.comment, g.grader) == (
            first, "sigma_regimes", 3.5, "no ln 2", PROF["email"])  # fmt: skip
    r = client.post(f"/dashboard/assignments/init-reg/answers/{second}",
                    data={"csrf_token": csrf, "points_sigma_regimes": "4"}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"].startswith("/dashboard/assignments/init-reg/answers?")  # nobody waits any more
    # the student reads the grade and the comment
    csrf = sign_in(client, tokens[0])
    page = client.get("/student/assignments/init-reg").text
    assert "3.5 / 4" in page and "no ln 2" in page


def test_grading_pages_are_for_instructors_only(client, tokens, db):
    sign_in(client, tokens[0])  # a student's session opens none of them
    with db.session() as s:
        pk = s.scalar(select(Student.id).where(Student.student_id == "s0"))
    for path in ["/dashboard/assignments/init-reg/answers", f"/dashboard/assignments/init-reg/answers/{pk}"]:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    r = client.post(f"/dashboard/assignments/init-reg/answers/{pk}", data={"points_sigma_regimes": "4"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code in (303, 403)
    with db.session() as s:
        assert s.scalar(select(ManualGrade)) is None


def test_the_report_prints_the_answers_and_the_portal_shows_it_in_the_page(client, db, settings, tmp_path):
    """A real grading (in this process, the worker's grade_submission) of a file on the tiny lab with the
    default lab's questions: the answers submitted before it are in the PDF and in the HTML the portal frames."""
    from conftest import pdf_text

    from service.jobs import grade_submission

    from .test_portal_browser import lab_with_questions

    with db.session() as s:
        s.add(Assignment(id="lab", title="Lab 3", config_path=str(lab_with_questions(tmp_path))))
    (token,) = enroll(db, 1, "lab")
    csrf = sign_in(client, token)
    answer = "Dropout closes the gap between training and validation <b>loss</b>."
    client.post("/student/assignments/lab/answers",
                data={"csrf_token": csrf, "action": "submit", "q_dropout_regularization": answer})  # fmt: skip
    r = client.post("/student/assignments/lab/submissions", data={"csrf_token": csrf},
                    files={"file": ("lab3.py", b"def circle_model(sigma)\n")}, follow_redirects=False)  # fmt: skip
    sid = r.headers["location"].rsplit("/", 1)[-1]
    assert grade_submission(db, settings, sid, 1) == "done"
    with db.session() as s:
        report = Storage(settings.storage_dir).path(s.get(Submission, sid).report_path)
    text = " ".join(pdf_text(report)[0].split())
    assert "Written answers" in text and "training and validation <b>loss</b>." in text
    assert text.count("Not answered.") == 4
    page = client.get(f"/student/submissions/{sid}").text
    assert f'src="/student/submissions/{sid}/report.html"' in page
    html = client.get(f"/student/submissions/{sid}/report.html")
    assert html.status_code == 200 and "&lt;b&gt;loss&lt;/b&gt;" in html.text and "<script" not in html.text
