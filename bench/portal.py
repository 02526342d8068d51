"""A student's pages in the portal under a real course: the 500-student, 5,000-submission course of
bench.dashboard.build_course, served by `labgrader serve` (uvicorn) in a subprocess. One student, signed in with
the token, requests the portal's home, the assignment page (submissions, the upload form and the five written
answers), a graded submission's page and the status JSON that a submission page polls. The baseline: the same
pages of a student of a 50-student course in the same database and process, so the ratio says whether a
student's page grows with the course (it should not)."""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from bench.common import Row
from bench.dashboard import _percentile, build_course, serve
from bench.service import BenchSetupError
from grader.assignment import load_assignment
from service.db import Database
from service.models import Answer, Status, Submission, utcnow

GOAL_P99_MS = 100.0


def _with_answers(db_url: str, course: dict) -> str:
    """The student's five written answers (submitted), and the id of their latest graded submission."""
    with Database(db_url) as db, db.session() as s:
        for q in load_assignment().questions:
            text = f"My answer to {q.title}: " + "the loss at init is close to ln 2 and " * 20
            s.add(Answer(student_pk=course["student_pk"], assignment_id=course["assignment"], question_id=q.id,
                         draft=text, saved_at=utcnow(), text=text, submitted_at=utcnow(), late=False))  # fmt: skip
        graded = s.scalar(select(Submission.id).where(Submission.student_pk == course["student_pk"],
                                                      Submission.status == Status.done)
                          .order_by(Submission.created_at.desc()))  # fmt: skip
        if graded is None:  # build_course grades 88%: make sure this student has one
            sub = s.scalar(select(Submission).where(Submission.student_pk == course["student_pk"]))
            sub.status, sub.score, sub.max_score, sub.check_scores = Status.done, 100.0, 140.0, {}
            graded = sub.id
        return graded


def signed_in(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/student").text).group(1)
    r = client.post("/student/login", data={"token": token, "csrf_token": csrf})
    if r.status_code != 303:
        raise BenchSetupError(f"the portal refused the bench student's token ({r.status_code}): {r.text[:300]}")
    return client


def bench_portal(quick: bool) -> Row:
    requests = 30 if quick else 200
    students, subs = (100, 1000) if quick else (500, 5000)
    with tempfile.TemporaryDirectory(prefix="labgrader-bench-portal-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        db_url = f"sqlite:///{folder / 'course.sqlite'}"
        big = build_course(db_url, students=students, submissions=subs, assignment="init-reg", seed=1)
        small = build_course(db_url, students=students // 10, submissions=subs // 10, assignment="small-course",
                             seed=2)  # fmt: skip
        pages = {}
        for key, course in (("big", big), ("small", small)):
            sub = _with_answers(db_url, course)
            pages[key] = {
                "home": "/student",
                "assignment": f"/student/assignments/{course['assignment']}",
                "submission": f"/student/submissions/{sub}",
                "status": f"/student/submissions/{sub}/status",
            }
        api, url = serve(db_url, folder)
        clients = {}
        try:
            clients = {key: signed_in(url, course["token"]) for key, course in (("big", big), ("small", small))}
            times = {key: {name: [] for name in pages[key]} for key in pages}
            for round_ in range(5 + requests):  # 5 warm-up rounds; big and small take turns: the same machine
                for key in ("big", "small"):
                    for name, path in pages[key].items():
                        start = time.perf_counter()
                        r = clients[key].get(path)
                        elapsed = (time.perf_counter() - start) * 1000
                        if r.status_code != 200:
                            raise AssertionError(f"GET {path} answered {r.status_code}: {r.text[:300]}")
                        if round_ >= 5:
                            times[key][name].append(elapsed)
        finally:
            for c in clients.values():
                c.close()
            api.stop()
    stats = {key: {name: {"p50": statistics.median(v), "p99": _percentile(v, 99)} for name, v in t.items()}
             for key, t in times.items()}  # fmt: skip
    worst = {key: max(stats[key].values(), key=lambda st: st["p99"])["p99"] for key in stats}
    slowest = max(stats["big"], key=lambda name: stats["big"][name]["p99"])
    what = (
        f"a student's portal pages (home, assignment with 5 written answers, a graded submission, its status JSON) "
        f"in a course of {students} students and {subs:,} submissions from `labgrader serve` (SQLite): the slowest "
        f"page's p99 ({slowest}) over {requests} sequential rounds; baseline: the same pages in a "
        f"{students // 10}-student course (a ratio near 1: a student's page does not grow with the course)"
    )
    details = [
        "| page | p50 ms (ours) | p99 ms (ours) | p50 ms (baseline) | p99 ms (baseline) |",
        "|---|---:|---:|---:|---:|",
        *(f"| {name} | {stats['big'][name]['p50']:.1f} | {stats['big'][name]['p99']:.1f} | "
          f"{stats['small'][name]['p50']:.1f} | {stats['small'][name]['p99']:.1f} |" for name in stats["big"]),
        "",
        "One student of each course, signed in with the token (an httpx client holding the session cookie), "
        "requests the four pages in turn, alternating with the other course's student, after 5 warm-up rounds. "
        "Data: `bench.dashboard.build_course`.",
    ]  # fmt: skip
    return Row("portal", worst["small"], worst["big"], what, unit="ms p99", details=details)
