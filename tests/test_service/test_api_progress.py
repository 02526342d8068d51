"""Progress as a student polls it: a real grading of the reference solution on the tiny assignment (in this
process, with the service's grade_submission), every progress callback of the grader and every value the
heartbeat stores, on SQLite. Neither goes down, and the stored progress is 1 only once the submission is done."""

from __future__ import annotations

from pathlib import Path

import pytest

import service.jobs
from service.models import Status, Submission

from .kit import add_tiny_assignment, bearer, enroll
from .test_service_api import submit

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference_solution.py"


@pytest.mark.slow  # a real grading of the reference (~11 s)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_progress_of_a_real_grading_never_goes_down(client, db, settings, monkeypatch):
    add_tiny_assignment(db)
    (token,) = enroll(db, 1, "tiny")
    sid = submit(client, token, REFERENCE.read_bytes(), "reference_solution.py", "tiny").json()["id"]
    reported: list[tuple[str, int, int]] = []  # what the grader calls back with
    stored: list[tuple[float, str]] = []  # what the API answers after each heartbeat
    report, beat = service.jobs.Heartbeat.report, service.jobs.heartbeat

    def recording_report(self, what, step, total):
        reported.append((what, step, total))
        report(self, what, step, total)

    def recording_heartbeat(*args, **kwargs):
        beat(*args, **kwargs)
        body = client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()
        stored.append((body["progress"], body["step"]))

    monkeypatch.setattr(service.jobs.Heartbeat, "report", recording_report)
    monkeypatch.setattr(service.jobs, "heartbeat", recording_heartbeat)
    fast_beats = settings.model_copy(update={"heartbeat_seconds": 0.02})
    assert service.jobs.grade_submission(db, fast_beats, sid, 1) == "done"

    fractions = [step / total for _, step, total in reported]
    assert fractions == sorted(fractions), reported
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(set(fractions)) > 5, reported
    assert any(what.startswith("running your models: ") for what, _, _ in reported)
    assert all(f < 1.0 for f in fractions[:-1]), reported  # the grader's 1 comes once it has scored every check
    values = [p for p, _ in stored]
    assert values == sorted(values), stored
    assert len(set(values)) > 3 and all(v < 1.0 for v in values), stored
    body = client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()
    assert (body["status"], body["progress"]) == ("done", 1.0)
    with db.session() as s:
        assert s.get(Submission, sid).status == Status.done


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_schema_says_progress_never_goes_down_and_is_1_only_when_done(client):
    fields = client.get("/openapi.json").json()["components"]["schemas"]["SubmissionPublic"]["properties"]
    description = fields["progress"]["description"]
    assert "never goes down" in description and "1 only once the submission is done" in description
