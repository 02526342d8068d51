"""The student API against SQLite and PostgreSQL: submitting, following, downloading, and every way a request
is refused. Messages go to a queue of the test's own on the machine's Redis (no worker here)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.api.app import create_app
from service.db import Database
from service.maintenance import sweep_once
from service.migrate import upgrade
from service.models import Assignment, Instructor, Status, Submission
from service.queue import make_celery, send, submissions_in_broker
from service.security import hash_password
from service.storage import Storage

from .kit import REDIS, bearer, enroll, make_settings, redis_do

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference_solution.py"


def submit(client: TestClient, token: str, content: bytes = b"x = 1\n", name: str = "lab.py", assignment="init-reg"):
    return client.post(
        "/api/submissions", headers=bearer(token), files={"file": (name, content)}, data={"assignment": assignment}
    )


def test_a_submission_is_stored_then_queued_and_answered_at_once(client, db, settings):
    (token,) = enroll(db, 1)
    r = submit(client, token, REFERENCE.read_bytes(), "reference_solution.py")
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/submissions/{body['id']}"
    assert (body["status"], body["queue_position"], body["late"]) == ("queued", 1, False)  # 1: next
    assert body["filename"] == "reference_solution.py"
    stored = Storage(settings.storage_dir).upload_path(body["id"])
    assert stored.read_bytes() == REFERENCE.read_bytes()
    assert redis_do("llen", settings.queue) == 1
    assert submissions_in_broker(settings.broker_url, settings.queue) == {body["id"]}


def test_status_list_and_queue_position(client, db):
    (token,) = enroll(db, 1)
    ids = [submit(client, token).json()["id"] for _ in range(3)]
    listed = client.get("/api/submissions", headers=bearer(token)).json()["submissions"]
    assert [s["id"] for s in listed] == ids[::-1]  # newest first
    positions = [client.get(f"/api/submissions/{i}", headers=bearer(token)).json()["queue_position"] for i in ids]
    assert positions == [1, 2, 3]  # counted from 1: the first is graded next
    assert [s["queue_position"] for s in listed] == [3, 2, 1]
    assert client.get("/api/submissions?assignment=other", headers=bearer(token)).json() == {"submissions": []}


def test_report_and_result_answer_409_until_graded(client, db):
    (token,) = enroll(db, 1)
    sid = submit(client, token).json()["id"]
    for what in ("report.pdf", "result.json"):
        r = client.get(f"/api/submissions/{sid}/{what}", headers=bearer(token))
        assert r.status_code == 409
        assert "waiting in the queue" in r.json()["detail"]


def test_a_student_sees_nothing_of_another(client, db):
    alice, bob = enroll(db, 2)
    sid = submit(client, alice).json()["id"]
    for path in ("", "/report.pdf", "/result.json"):
        r = client.get(f"/api/submissions/{sid}{path}", headers=bearer(bob))
        assert r.status_code == 404, path
        assert sid not in r.text
    assert client.get("/api/submissions", headers=bearer(bob)).json() == {"submissions": []}


def test_no_token_or_a_wrong_token_gets_401_and_no_data(client, db):
    (token,) = enroll(db, 1)
    sid = submit(client, token).json()["id"]
    for headers in ({}, bearer("lg_not-a-token"), {"Authorization": "Basic Zm9vOmJhcg=="}, bearer(token + "x")):
        for method, path in (("get", "/api/submissions"), ("get", f"/api/submissions/{sid}"),
                             ("get", f"/api/submissions/{sid}/report.pdf"), ("get", "/api/assignments"),
                             ("post", "/api/submissions")):  # fmt: skip
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401, (headers, path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            assert sid not in r.text
    assert "Authorization: Bearer" in submit(client, "").json()["detail"]


def test_refused_files_say_what_was_wrong_and_are_not_stored(client, db, settings):
    (token,) = enroll(db, 1)
    cases = [
        ("notes.txt", b"x = 1", 415, "not a Python file"),
        ("lab.py", b"x" * (settings.max_upload_bytes + 1), 413, "larger than"),
        ("lab.py", b"  \n\n", 422, "empty"),
        ("lab.py", "x = 'é'".encode("latin-1"), 422, "not UTF-8"),
        ("lab.py", b"x = 1\x00", 422, "NUL"),
    ]
    for name, content, code, words in cases:
        r = submit(client, token, content, name)
        assert r.status_code == code, (name, r.text)
        assert words in r.json()["detail"]
    assert client.get("/api/submissions", headers=bearer(token)).json() == {"submissions": []}
    assert not (settings.storage_dir / "submissions").exists()
    assert redis_do("llen", settings.queue) == 0


def test_assignment_must_exist_and_the_student_be_on_its_roster(client, db):
    (token,) = enroll(db, 1)
    r = submit(client, token, assignment="nope")
    assert r.status_code == 404 and "no assignment 'nope'" in r.json()["detail"]
    with db.session() as s:
        s.add(Assignment(id="other", title="Other lab"))
    r = submit(client, token, assignment="other")
    assert r.status_code == 403 and "roster" in r.json()["detail"]
    assert client.get("/api/assignments", headers=bearer(token)).json()["assignments"][0]["id"] == "init-reg"
    assert submit(client, token, assignment=None).status_code == 422  # the form field is required


def test_a_hostile_file_name_is_not_used_as_a_path(client, db, settings):
    (token,) = enroll(db, 1)
    body = submit(client, token, name="../../etc/evil name.py").json()
    assert body["filename"] == "evil_name.py"  # the last part only, made safe
    assert Storage(settings.storage_dir).upload_path(body["id"]).is_relative_to(settings.storage_dir.resolve())


def test_rate_limit_per_student_and_assignment(tmp_path, database_url):
    settings = make_settings(tmp_path, database_url, rate_limit=2, rate_window_seconds=600)
    upgrade(settings.sqlalchemy_url)
    with Database(settings.sqlalchemy_url) as db:
        alice, bob = enroll(db, 2)
    with TestClient(create_app(settings)) as client:
        assert [submit(client, alice).status_code for _ in range(2)] == [202, 202]
        r = submit(client, alice)
        assert r.status_code == 429
        assert 0 < int(r.headers["retry-after"]) <= 601
        assert "limit is 2" in r.json()["detail"]
        assert submit(client, bob).status_code == 202  # another student is not held back
    redis_do("delete", settings.queue)


def test_late_submissions_are_accepted_and_flagged(client, db):
    (token,) = enroll(db, 1)
    with db.session() as s:
        s.get(Assignment, "init-reg").deadline = datetime.now(UTC) + timedelta(hours=1)
    assert submit(client, token).json()["late"] is False
    with db.session() as s:
        s.get(Assignment, "init-reg").deadline = datetime.now(UTC) - timedelta(seconds=1)
    r = submit(client, token)
    assert r.status_code == 202 and r.json()["late"] is True


@pytest.mark.slow  # waits for the sweep
def test_with_the_broker_down_a_submission_is_kept_and_sent_by_the_sweep(tmp_path, database_url):
    down = make_settings(tmp_path, database_url, broker_url="redis://127.0.0.1:1/0", requeue_after_seconds=0)
    upgrade(down.sqlalchemy_url)
    db = Database(down.sqlalchemy_url)
    (token,) = enroll(db, 1)
    with db, TestClient(create_app(down)) as client:
        r = submit(client, token)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        health = client.get("/api/health")
        assert health.status_code == 503 and health.json() == {"database": True, "broker": False}
        up = down.model_copy(update={"broker_url": REDIS})
        with make_celery(up) as app:
            assert sweep_once(db, app, up).resent == [r.json()["id"]]
            assert submissions_in_broker(REDIS, up.queue) == {r.json()["id"]}
            assert sweep_once(db, app, up).resent == []  # in the broker now: not sent twice
    redis_do("delete", up.queue)


def test_a_broker_that_never_answers_gives_up_a_send_after_the_broker_timeout(tmp_path):
    """A Redis that accepts connections and then hangs (a full disk, a stopped container behind a proxy) must not
    hold the thread that sends for ever: the send fails after BROKER_TIMEOUT and the sweep sends again."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept_and_keep_silent() -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept_and_keep_silent, daemon=True).start()
    port = listener.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'lab.db'}"  # not used: the send alone is under test
    settings = make_settings(tmp_path, url, broker_url=f"redis://127.0.0.1:{port}/0", broker_timeout=1)
    outcome: list[bool] = []
    with make_celery(settings) as app:
        started = time.monotonic()
        sender = threading.Thread(target=lambda: outcome.append(send(app, settings.queue, "s1", 1)), daemon=True)
        sender.start()
        sender.join(30)
        took = time.monotonic() - started
    listener.close()
    assert outcome == [False], f"the send still waits after {took:.0f} s"
    assert held and took < 15


def test_health_answers_200_when_database_and_broker_answer(client):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"database": True, "broker": True}


def test_graded_files_are_served_to_their_owner(client, db, settings):
    (token,) = enroll(db, 1)
    sid = submit(client, token).json()["id"]
    storage = Storage(settings.storage_dir)
    folder = storage.attempt_dir(sid, 1, 1)
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"score": 1}))
    (folder / "report.pdf").write_bytes(b"%PDF-1.7 stand-in written by the test")
    with db.session() as s:
        s.execute(update(Submission).where(Submission.id == sid).values(
            status=Status.done, score=1.0, max_score=95.0,
            result_path=storage.relative(folder / "result.json"), report_path=storage.relative(folder / "report.pdf"),
        ))  # fmt: skip
    r = client.get(f"/api/submissions/{sid}/report.pdf", headers=bearer(token))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and "attachment" in r.headers["content-disposition"]
    assert client.get(f"/api/submissions/{sid}/result.json", headers=bearer(token)).json() == {"score": 1}
    assert client.get(f"/api/submissions/{sid}", headers=bearer(token)).json()["score"] == 1.0


def test_instructors_list_an_assignment_and_regrade_with_their_password(client, db, settings):
    alice, bob = enroll(db, 2)
    ids = [submit(client, t).json()["id"] for t in (alice, bob)]
    with db.session() as s:
        s.add(Instructor(email="prof@example.org", password_hash=hash_password("correct horse")))
    prof = ("prof@example.org", "correct horse")
    for auth in (None, ("prof@example.org", "wrong"), ("nobody@example.org", "correct horse")):
        r = client.get("/api/instructor/assignments/init-reg/submissions", auth=auth)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Basic"
    r = client.get("/api/instructor/assignments/init-reg/submissions", headers=bearer(alice))
    assert r.status_code == 401  # a student token is no instructor login
    listed = client.get("/api/instructor/assignments/init-reg/submissions", auth=prof).json()["submissions"]
    assert sorted(s["id"] for s in listed) == sorted(ids)
    assert client.get("/api/instructor/assignments/nope/submissions", auth=prof).status_code == 404
    assert client.post(f"/api/instructor/submissions/{ids[0]}/regrade", auth=prof).json() == {"queued": 1}
    assert client.post("/api/instructor/assignments/init-reg/regrade", auth=prof).json() == {"queued": 2}
    with db.session() as s:
        assert [s.get(Submission, i).generation for i in ids] == [3, 2]
    assert redis_do("llen", settings.queue) == 2 + 3  # the first sends, then one message per regrade
    assert client.post("/api/instructor/submissions/nope/regrade", auth=prof).status_code == 404


def test_an_oversized_upload_is_refused_before_it_is_read(client, db, settings):
    (token,) = enroll(db, 1)
    big = b"# padding\n" * (settings.max_upload_bytes // 5)  # twice the limit
    r = submit(client, token, big)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunks():  # no Content-Length: the cap applies while the body streams in
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="lab.py"\r\n\r\n'
        for _ in range(30):
            yield b"x" * 100_000

    r = client.post("/api/submissions", headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=b"},
                    content=chunks())  # fmt: skip
    assert r.status_code == 413
    assert not (settings.storage_dir / "submissions").exists()


def test_every_too_large_upload_gets_one_message_naming_the_file_limit(client, db, settings):
    (token,) = enroll(db, 1)
    limit = settings.max_upload_bytes
    expected = (f"The file is larger than the limit of {limit:,} bytes for a submission: submit only your Python "
                "source (no data, no weights).")  # fmt: skip
    just_over = submit(client, token, b"#" * (limit + 1))  # passes the request cap; the file check refuses it
    far_over = submit(client, token, b"#" * (3 * limit))  # refused by the request cap, before it is read
    streamed = client.post(
        "/api/submissions", headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=b"},
        content=iter([b'--b\r\nContent-Disposition: form-data; name="file"; filename="lab.py"\r\n\r\n',
                      *[b"x" * 100_000] * 12]),
    )  # fmt: skip  # no Content-Length: refused while it streams in
    for r in (just_over, far_over, streamed):
        assert (r.status_code, r.json()) == (413, {"detail": expected})
    assert "1,000,000" in expected and "1,065,536" not in expected
    assert submit(client, token, b"#" * limit).status_code == 202  # at the limit: accepted
