"""The service as users run it: `labgrader serve` and `labgrader worker` processes on the real Redis and
PostgreSQL (or SQLite), grading real submissions with the tiny assignment. Workers die, Redis loses its data,
the API restarts, 200 files arrive at once: nothing is lost and nothing is graded twice."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from grader.assignment import load_assignment
from grader.result import GradeResult
from service.db import Database
from service.migrate import upgrade
from service.models import GradingAttempt, Instructor, Outcome, Status, Submission
from service.security import hash_password
from service.storage import Storage

from .kit import REDIS, SUBMISSIONS_DIR, TINY, add_tiny_assignment, enroll, free_port, make_settings
from .processes import LABGRADER, Process, RedisServer, Service, wait_for

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference_solution.py"
FAST_LEASE = {"lease_seconds": 4, "heartbeat_seconds": 0.5, "sweep_interval_seconds": 1, "requeue_after_seconds": 3}


def draft(student: int, n: int) -> bytes:
    """An early draft that defines none of the lab's functions yet: graded (and reported on) in seconds."""
    return f'"""Draft {n} of student {student}: nothing defined yet."""\n\nimport torch\n'.encode()


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def submit(self, token: str, content: bytes, name: str = "lab.py", assignment: str = "tiny") -> httpx.Response:
        return httpx.post(f"{self.url}/api/submissions", headers={"Authorization": f"Bearer {token}"},
                          files={"file": (name, content)}, data={"assignment": assignment}, timeout=30)  # fmt: skip

    def get(self, token: str, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def status(self, token: str, sid: str) -> dict:
        return self.get(token, f"/api/submissions/{sid}").json()


@pytest.fixture
def service(tmp_path, request):
    """A Service on a fresh PostgreSQL database (or SQLite with `@pytest.mark.parametrize('database', ...)`)."""
    url = f"sqlite:///{tmp_path / 'labgrader.db'}" if getattr(request, "param", "") == "sqlite" else None
    url = url or request.getfixturevalue("postgres_url")
    settings = make_settings(tmp_path, url, **FAST_LEASE)
    upgrade(settings.sqlalchemy_url)
    svc = Service(settings, tmp_path)
    with Database(settings.sqlalchemy_url) as db:
        add_tiny_assignment(db)
        svc.db = db
        yield svc
    svc.stop()


def done_attempts(db: Database) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(
            select(GradingAttempt.submission_id, func.count())
            .where(GradingAttempt.outcome == Outcome.done)
            .group_by(GradingAttempt.submission_id)
        )
        return dict(rows.all())


def statuses(db: Database) -> dict[str, Status]:
    with db.session() as s:
        return dict(s.execute(select(Submission.id, Submission.status)).all())


def all_done(db: Database, ids: list[str]):
    current = statuses(db)
    return all(current.get(i) == Status.done for i in ids)


def result_files(storage: Storage, sid: str) -> list[Path]:
    return sorted(storage.submission_dir(sid).glob("g*-a*/result.json"))


@pytest.mark.parametrize(
    "service", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True
)  # PostgreSQL in the full suite
def test_a_submission_goes_from_upload_to_report(service):
    (token,) = enroll(service.db, 1, "tiny")
    service.start_api()
    service.start_worker()
    api = Api(service.url)
    good = api.submit(token, REFERENCE.read_bytes(), "reference_solution.py").json()["id"]
    broken = api.submit(token, b"def circle_model(sigma)\n    return None\n", "broken.py").json()["id"]
    seen = set()

    def finished():
        st = api.status(token, good)
        seen.add((st["status"], st["step"].split(":")[0]))
        return all_done(service.db, [good, broken])

    wait_for(finished, 240, "both submissions graded", interval=0.5)
    assert ("running", "running your models") in seen  # progress was visible while it ran
    body = api.status(token, good)
    tiny = load_assignment(TINY)
    tiny_max = sum(tiny.max_points(check) for check in tiny.points)
    assert body["status"] == "done" and body["max_score"] == tiny_max and body["score"] > 0 and body["progress"] == 1.0
    result = GradeResult.model_validate_json(api.get(token, f"/api/submissions/{good}/result.json").content)
    assert result.submission.student == "Student s0" and result.assignment_id == "tiny"
    assert result.score == body["score"]
    report = api.get(token, f"/api/submissions/{good}/report.pdf")
    pdf = service.folder / "good.pdf"
    pdf.write_bytes(report.content)
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "reference_solution.py" in text and "Student s0" in text and "Loss at initialization" in text
    # a file that does not even parse is graded too: 0 points, and a report that says why
    assert api.status(token, broken)["score"] == 0
    pdf.write_bytes(api.get(token, f"/api/submissions/{broken}/report.pdf").content)
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "SyntaxError" in text and "broken.py" in text


@pytest.mark.slow  # real workers graded for tens of seconds
def test_a_worker_killed_while_grading_is_replaced_and_the_submission_graded_once(service):
    (token,) = enroll(service.db, 1, "tiny")
    service.start_api()
    first = service.start_worker()
    api = Api(service.url)
    sid = api.submit(token, REFERENCE.read_bytes(), "reference_solution.py").json()["id"]
    wait_for(lambda: api.status(token, sid)["step"].startswith("running your models"), 120, "grading under way")
    first.kill(signal.SIGKILL)  # the worker, its pool process and the sandbox children, mid-grading
    assert api.status(token, sid)["status"] == "running"
    service.start_worker()
    wait_for(lambda: all_done(service.db, [sid]), 240, "the replacement worker to grade it", interval=0.5)
    with service.db.session() as s:
        outcomes = s.scalars(select(GradingAttempt.outcome).order_by(GradingAttempt.attempt)).all()
    assert outcomes == [Outcome.lost, Outcome.done]
    assert len(result_files(Storage(service.settings.storage_dir), sid)) == 1
    assert api.status(token, sid)["score"] > 0


@pytest.mark.slow  # real workers graded for tens of seconds
def test_redis_restarted_empty_loses_no_submission(service, tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    service.settings = service.settings.model_copy(update={"broker_url": redis_server.url})
    tokens = enroll(service.db, 3, "tiny")
    service.start_api()
    service.start_worker()
    api = Api(service.url)
    ids = [api.submit(t, draft(i, n)).json()["id"] for n in range(3) for i, t in enumerate(tokens)]
    redis_server.kill()  # every waiting message is gone with it; the worker loses its connection mid-task
    redis_server.start()
    wait_for(lambda: all_done(service.db, ids), 300, "every submission graded after the restart", interval=0.5)
    assert done_attempts(service.db) == dict.fromkeys(ids, 1)
    assert [api.status(tokens[0], i)["status"] for i in ids[:: len(tokens)]] == ["done"] * 3
    redis_server.kill()


@pytest.mark.slow  # real workers graded for tens of seconds
def test_the_api_restarted_mid_burst_loses_nothing_and_grades_nothing_twice(service):
    tokens = enroll(service.db, 5, "tiny")
    api_process = service.start_api()
    service.start_worker()
    api = Api(service.url)
    accepted = [api.submit(t, draft(i, 0)).json()["id"] for i, t in enumerate(tokens)]
    api_process.kill(signal.SIGKILL)
    service.start_api()
    accepted += [api.submit(t, draft(i, 1)).json()["id"] for i, t in enumerate(tokens)]
    wait_for(lambda: all_done(service.db, accepted), 300, "every accepted submission graded", interval=0.5)
    assert done_attempts(service.db) == dict.fromkeys(accepted, 1)
    assert set(statuses(service.db)) == set(accepted)


async def _burst(url: str, tokens: list[str], per_student: int) -> tuple[list[str], list[float]]:
    """Every student sends `per_student` drafts at once; the ids accepted and each request's latency."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int, token: str, n: int) -> tuple[str, float]:
            t0 = time.perf_counter()
            r = await client.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                                  files={"file": ("lab.py", draft(i, n))}, data={"assignment": "tiny"})  # fmt: skip
            assert r.status_code == 202, r.text
            return r.json()["id"], time.perf_counter() - t0

        done = await asyncio.gather(*(one(i, t, n) for n in range(per_student) for i, t in enumerate(tokens)))
    return [sid for sid, _ in done], [dt for _, dt in done]


@pytest.mark.slow  # real workers graded for tens of seconds
def test_a_burst_of_200_submissions_from_50_students_is_all_graded_once(service):
    tokens = enroll(service.db, 50, "tiny")
    service.start_api()
    for _ in range(2):
        service.start_worker()
    t0 = time.perf_counter()
    ids, latencies = asyncio.run(_burst(service.url, tokens, per_student=4))
    accepted_in = time.perf_counter() - t0
    assert len(set(ids)) == 200
    latencies.sort()
    print(f"burst: 200 submissions accepted in {accepted_in:.1f} s ({200 / accepted_in:.0f}/s) while 2 workers "
          f"grade; latency median {statistics.median(latencies):.2f} s, max {latencies[-1]:.2f} s")  # fmt: skip
    assert accepted_in < 30
    api = Api(service.url)
    polls = []
    for i, token in enumerate(tokens):  # students polling their status while the backlog is graded
        t = time.perf_counter()
        assert api.status(token, ids[i])["status"] in ("queued", "running", "done")
        polls.append(time.perf_counter() - t)
    polls.sort()
    print(f"status polls while grading: median {statistics.median(polls) * 1000:.0f} ms, "
          f"p95 {polls[int(0.95 * len(polls))] * 1000:.0f} ms")  # fmt: skip
    assert polls[int(0.95 * len(polls))] < 0.5
    t0 = time.monotonic()
    wait_for(lambda: all_done(service.db, ids), 1200, "all 200 graded", interval=1)
    print(f"200 drafts graded by 2 workers in {time.monotonic() - t0:.0f} s")
    assert done_attempts(service.db) == dict.fromkeys(ids, 1)


@pytest.mark.slow  # real workers graded for tens of seconds
def test_hostile_submissions_through_the_api_leave_the_workers_standing(service):
    """Every hostile file of the grader's tests, sent as students send them: each one ends graded with a
    report (or failed with a reason), and the same worker processes grade a draft afterwards."""
    hostile = sorted((SUBMISSIONS_DIR / "hostile").glob("*.py"))
    tokens = enroll(service.db, len(hostile), "tiny")
    service.start_api()
    workers = [service.start_worker(), service.start_worker()]
    api = Api(service.url)
    ids = {
        api.submit(t, f.read_bytes(), f.name).json()["id"]: (t, f.name) for t, f in zip(tokens, hostile, strict=True)
    }
    wait_for(lambda: all(s in (Status.done, Status.failed) for s in statuses(service.db).values()), 900,
             "every hostile submission finished", interval=1)  # fmt: skip
    for sid, (token, name) in ids.items():
        body = api.status(token, sid)
        assert body["status"] == "done", (name, body["error"])
        report = api.get(token, f"/api/submissions/{sid}/report.pdf")
        assert report.status_code == 200 and report.content.startswith(b"%PDF"), name
    assert all(w.alive() for w in workers)
    after = api.submit(tokens[0], draft(0, 0)).json()["id"]
    wait_for(lambda: all_done(service.db, [after]), 120, "a draft graded after the hostile ones")
    assert done_attempts(service.db) == dict.fromkeys([*ids, after], 1)


def test_labgrader_up_runs_the_whole_service_on_the_embedded_defaults(tmp_path):
    """The README's one command: SQLite in the storage folder, the local Redis, one worker, the API."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABGRADER_")}
    env |= {"LABGRADER_STORAGE_DIR": str(tmp_path / "var"), "LABGRADER_PORT": str(port),
            "LABGRADER_BROKER_URL": REDIS, "LABGRADER_QUEUE": f"test-up-{port}"}  # fmt: skip
    up = Process([*LABGRADER, "up"], env, tmp_path / "up.log")
    try:
        api = Api(f"http://127.0.0.1:{port}")
        wait_for(lambda: _answers(api.url) and "ready." in up.output(), 90, f"labgrader up ({up.log})")
        with Database(f"sqlite:///{tmp_path / 'var' / 'labgrader.db'}") as db:
            (token,) = enroll(db, 1)
            sid = api.submit(token, draft(0, 0), assignment="init-reg").json()["id"]
            wait_for(lambda: all_done(db, [sid]), 120, "the draft graded")
        assert api.get(token, f"/api/submissions/{sid}/report.pdf").content.startswith(b"%PDF")
    finally:
        up.kill(signal.SIGTERM, group=False)  # only `up` itself is signalled: it must take its worker with it
    marker = f"LABGRADER_QUEUE=test-up-{port}".encode()
    wait_for(lambda: not _processes_with(marker), 30, "the worker of `labgrader up` to stop")


def _processes_with(marker: bytes) -> list[int]:
    """Pids of live processes whose environment holds `marker`."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:
            continue
    return pids


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow  # real workers grading twice
def test_a_regrade_grades_a_new_generation_once(service):
    (token,) = enroll(service.db, 1, "tiny")
    with service.db.session() as s:
        s.add(Instructor(email="prof@example.org", password_hash=hash_password("correct horse")))
    service.start_api()
    service.start_worker()
    api = Api(service.url)
    sid = api.submit(token, draft(0, 0)).json()["id"]
    wait_for(lambda: all_done(service.db, [sid]), 120, "the first grading")
    r = httpx.post(
        f"{service.url}/api/instructor/submissions/{sid}/regrade", auth=("prof@example.org", "correct horse")
    )
    assert r.status_code == 202
    wait_for(lambda: all_done(service.db, [sid]) and api.status(token, sid)["finished_at"], 120, "the regrade")
    with service.db.session() as s:
        rows = s.execute(select(GradingAttempt.generation, GradingAttempt.outcome).order_by(GradingAttempt.attempt))
        assert rows.all() == [(1, Outcome.done), (2, Outcome.done)]
        assert s.get(Submission, sid).result_path.endswith("g2-a2/result.json")
    assert len(result_files(Storage(service.settings.storage_dir), sid)) == 2
