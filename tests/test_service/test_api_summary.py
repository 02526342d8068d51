"""What a student reads about a grading that got nothing: real gradings (in this process, with the service's own
grade_submission on the tiny assignment) of broken files, on SQLite and PostgreSQL. The summary names the file as
the student uploaded it (made safe), and so do the messages and tracebacks of the result."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from grader.result import CheckResult, Failure, GradeResult, IsolationInfo, Submission
from service.intake import check_file, safe_name
from service.jobs import grade_submission, summarize
from service.models import Assignment, Status
from service.models import Submission as Row

from .kit import add_tiny_assignment, bearer, enroll
from .test_service_api import submit

SYNTAX_ERROR = b"import torch\n\ndef circle_model(sigma)\n    return None\n"
RAISES = b"import torch\n\n\ndef helper():\n    return 1 / 0\n\n\nhelper()\n"


def graded(client, db, settings, content: bytes, name: str) -> tuple[dict, dict | None]:
    """Upload `content` as `name` to the tiny assignment, grade it here; the API's answer and the result JSON."""
    add_tiny_assignment(db)
    (token,) = enroll(db, 1, "tiny")
    r = submit(client, token, content, name, assignment="tiny")
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    assert grade_submission(db, settings, sid, 1) in ("done", "failed")
    body = client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()
    result = client.get(f"/api/submissions/{sid}/result.json", headers=bearer(token))
    return body, result.json() if result.status_code == 200 else None


def test_a_syntax_error_is_summed_up_with_the_students_own_file_name(client, db, settings):
    body, result = graded(client, db, settings, SYNTAX_ERROR, "lab3 (1).py")
    assert body["filename"] == "lab3_1_.py"
    assert (body["status"], body["score"], body["progress"]) == ("done", 0.0, 1.0)
    assert body["summary"].startswith("Your file lab3_1_.py has a syntax error on line 3: ")
    assert body["summary"].count(". ") == 0 and len(body["summary"]) <= 300  # one sentence
    failure = result["submission"]["load_failure"]
    assert failure["kind"] == "syntax_error"
    assert "`python lab3_1_.py`" in failure["message"]
    assert failure["traceback"].startswith('  File "lab3_1_.py", line 3')
    assert "submission.py" not in json.dumps(result)
    assert result["fast_mode"] is False
    with db.session() as s:
        row = s.get(Row, body["id"])
        assert (row.summary, row.fast) == (body["summary"], False)


def test_an_error_at_import_is_summed_up_and_its_traceback_names_the_file(client, db, settings):
    body, result = graded(client, db, settings, RAISES, "my lab.py")
    assert body["filename"] == "my_lab.py"
    assert body["summary"].startswith("Importing your file my_lab.py raised ZeroDivisionError"), body["summary"]
    traceback = result["submission"]["load_failure"]["traceback"]
    assert 'File "my_lab.py", line 8, in <module>' in traceback
    assert 'File "my_lab.py", line 5, in helper' in traceback
    assert "submission.py" not in json.dumps(result)


def test_a_file_that_defines_nothing_says_no_check_passed(client, db, settings):
    body, _ = graded(client, db, settings, b"x = 1\n", "lab.py")
    assert (body["status"], body["score"]) == ("done", 0.0)
    assert body["summary"].startswith("No check passed: "), body["summary"]
    assert "does not define" in body["summary"]


def test_a_grading_that_cannot_run_is_failed_with_a_summary(client, db, settings):
    add_tiny_assignment(db)
    (token,) = enroll(db, 1, "tiny")
    sid = submit(client, token, assignment="tiny").json()["id"]
    with db.session() as s:
        s.execute(update(Assignment).where(Assignment.id == "tiny").values(config_path="/nonexistent/lab.toml"))
    assert grade_submission(db, settings, sid, 1) == "failed"
    body = client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()
    assert body["status"] == "failed"
    assert body["summary"].startswith("The grader could not run"), body["summary"]
    assert body["progress"] < 1.0  # 1 means done


def test_a_graded_submission_with_points_has_no_summary_and_a_regrade_clears_it(client, db, settings):
    (token,) = enroll(db, 1)
    sid = submit(client, token).json()["id"]
    with db.session() as s:
        s.execute(update(Row).where(Row.id == sid).values(status=Status.done, score=0.0, summary="No check passed."))
    assert client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()["summary"] == "No check passed."
    from service.lifecycle import regrade

    regrade(db, [sid])
    assert client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()["summary"] is None


def result_with(score: float, load_failure: Failure | None = None, checks: list[CheckResult] | None = None):
    now = datetime.now(UTC)
    return GradeResult(
        grader_version="t", assignment_id="a", assignment_title="A", seconds=1, device="cpu", seed=0,
        submission=Submission(filename="lab3.py", sha256="0", size_bytes=1, load_failure=load_failure),
        started_at=now, finished_at=now, fast_mode=False, datasets=[], checks=checks or [], score=score,
        max_score=10, isolation=IsolationInfo(method="m", network_isolated=True, filesystem="f", limits={}),
    )  # fmt: skip


def test_summaries_of_each_kind_of_result():
    assert summarize(result_with(3.0)) is None
    timeout = Failure(kind="timeout", message="Your file did not finish within 30 s (wall-clock limit). Look ...")
    assert summarize(result_with(0.0, timeout)) == (
        "The grader stopped your file lab3.py: time limit (it did not finish within 30 s (wall-clock limit))."
    )
    message = "The loss at init is 9.1, expected about 2.3. Scale the output layer down."
    check = CheckResult(id="c", title="Loss at init", status="failed", score=0, max_score=5, message=message)
    assert summarize(result_with(0.0, checks=[check])) == (
        "No check passed: Loss at init: The loss at init is 9.1, expected about 2.3."
    )
    hostile = Failure(kind="exception", message="Your file raised \x1b[31mX" + "y" * 5000)
    text = summarize(result_with(0.0, hostile))
    assert "\x1b" not in text and len(text) <= 301


def test_unsafe_upload_names_are_kept_made_safe():
    assert check_file("lab3 (1).py", b"x = 1\n", 100) == "lab3_1_.py"
    assert check_file("C:\\Users\\me\\Downloads\\my lab.py", b"x = 1\n", 100) == "my_lab.py"
    assert safe_name("évaluation finale.py") == "evaluation_finale.py"
    assert safe_name("x" * 300 + ".py") == "x" * 100 + ".py"
    assert safe_name(".hidden.py") == "hidden.py"
    for hopeless in (".py", "日本.py", " .py"):
        assert safe_name(hopeless) == "submission.py"
    assert safe_name("lab_3.py") == "lab_3.py"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_what_the_student_reads_names_their_file_not_the_sandboxs(client, db, settings):
    body, result = graded(client, db, settings, SYNTAX_ERROR, "lab3_jan_novak.py")
    assert body["filename"] == "lab3_jan_novak.py"  # a safe name is kept as it is
    assert body["summary"].startswith("Your file lab3_jan_novak.py has a syntax error on line 3: "), body["summary"]
    failure = result["submission"]["load_failure"]
    assert "`python lab3_jan_novak.py`" in failure["message"]
    assert failure["traceback"].startswith('  File "lab3_jan_novak.py", line 3')
    with db.session() as s:
        pdf = settings.storage_dir / s.get(Row, body["id"]).report_path
    html = pdf.with_name("report.html").read_text(encoding="utf-8")  # the report as the portal shows it
    assert "python lab3_jan_novak.py" in html and "lab3_jan_novak.py" in html
    assert "submission.py" not in html and "submission.py" not in json.dumps(result)
