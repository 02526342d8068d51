"""The instructors' grade table under a real course: GET /dashboard/assignments/{id} (logged in) of an assignment
with 500 students and 5,000 submissions, served by `labgrader serve` (uvicorn) in a subprocess, against the same
page of a 50-student assignment in the same database and process (the baseline: how the page grows with 10x the
course). build_course() makes such a course in any database; other benchmarks reuse it."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import re
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from bench.common import ROOT, Row
from bench.service import BROKER, LABGRADER, BenchSetupError, Process, free_port, wait_for
from grader.assignment import load_assignment
from grader.catalog import CATALOG
from service.dashboard.grades import section_columns
from service.db import Database
from service.migrate import upgrade
from service.models import Answer, Assignment, Instructor, ManualGrade, Status, Student, Submission, utcnow
from service.roster import RosterRow, import_roster
from service.security import hash_password

INSTRUCTOR = ("bench@example.org", "bench password 1")
GOAL_P99_MS = 300.0


def build_course(db_url: str, students: int = 500, submissions: int = 5000, assignment: str = "init-reg",
                 seed: int = 0, answered: float = 0.0) -> dict:  # fmt: skip
    """A course in the database at `db_url` (migrated here): the instructor INSTRUCTOR (made once), `students`
    students on the roster of `assignment` (made unless it exists: the built-in lab) with tokens, and
    `submissions` submissions spread over them (at least one each while there are enough), most graded with
    check_scores and section_scores as a worker stores them (a fifth of the points lost at random), some failed
    (with a summary), a few queued or running, about one in twenty graded with the fast budgets; half the
    students have manual grades of some written questions; with `answered`, that share of the students submitted
    written answers (most questions each). Returns what a benchmark needs: {"assignment",
    "students", "submissions", "student_pk", "student_id", "token" (that student's API and portal token),
    "email", "password" (the instructor's login)}."""
    rng = random.Random(seed)
    upgrade(db_url)
    spec = load_assignment()
    checks = [(cid, title, spec.max_points(cid)) for cid, title in CATALOG if spec.max_points(cid) > 0]
    columns = section_columns(Assignment(config_path=None))
    parts = {sec.id: {"title": sec.title, "max": col.max_points, "checks": {m.partition(".")[0] for m in sec.members}}
             for sec, col in zip(spec.sections, columns, strict=True)}  # fmt: skip
    prefix = uuid.uuid4().hex[:6]
    with Database(db_url) as db:
        with db.session() as s:
            if s.scalar(select(Instructor).where(Instructor.email == INSTRUCTOR[0])) is None:
                s.add(Instructor(email=INSTRUCTOR[0], password_hash=hash_password(INSTRUCTOR[1])))
            if s.get(Assignment, assignment) is None:
                s.add(Assignment(id=assignment, title=f"Bench course ({students} students)"))
        with db.session() as s:
            rows = [RosterRow(f"{prefix}-{i:04d}", f"Student {i:04d} {prefix}", f"{prefix}-{i}@example.org")
                    for i in range(students)]  # fmt: skip
            issued = import_roster(s, rows, assignment)
        with db.session() as s:
            pks = dict(s.execute(select(Student.student_id, Student.id)
                                 .where(Student.student_id.startswith(f"{prefix}-"))).all())  # fmt: skip
            order = [pks[r.student_id] for r in rows]
            owners = [order[i % students] for i in range(submissions)]  # everyone once, then at random
            owners[students:] = [rng.choice(order) for _ in owners[students:]]
            now = utcnow()
            values = []
            for pk in owners:
                created = now - timedelta(minutes=rng.uniform(0, 14 * 24 * 60))
                roll = rng.random()
                status = (Status.done if roll < 0.88 else Status.failed if roll < 0.96
                          else Status.queued if roll < 0.99 else Status.running)  # fmt: skip
                row = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "student_pk": pk, "assignment_id": assignment,
                       "filename": rng.choice(["lab.py", "solution.py", "init_reg.py"]),
                       "sha256": f"{rng.getrandbits(256):064x}", "size_bytes": rng.randint(4_000, 60_000),
                       "created_at": created, "queued_at": created, "late": rng.random() < 0.1, "status": status,
                       "generation": 1, "attempt": 1 if status != Status.queued else 0,
                       "progress": 1.0 if status in (Status.done, Status.failed) else rng.random(),
                       "step": "Part 3: dropout" if status == Status.running else "", "fast": False,
                       "check_scores": None, "section_scores": None, "score": None, "max_score": None,
                       "summary": None, "error": None, "report_path": None, "result_path": None,
                       "started_at": None, "finished_at": None}  # fmt: skip
                if status == Status.done:
                    scores = {}
                    for cid, _title, top in checks:
                        got = top if rng.random() < 0.8 else round(rng.uniform(0, top) * 4) / 4
                        st = "passed" if got == top else rng.choice(["failed", "failed", "error"])
                        scores[cid] = {"score": got, "max_score": top, "status": st}
                    sections = {}
                    for sec in parts:  # each section: its members' share of their points
                        members = [scores[c] for c in parts[sec]["checks"] if c in scores]
                        share = (sum(m["score"] for m in members) / sum(m["max_score"] for m in members)
                                 if members else rng.random())  # fmt: skip
                        top = parts[sec]["max"]
                        sections[sec] = {"title": parts[sec]["title"], "score": round(share * top * 4) / 4,
                                         "max_score": top}  # fmt: skip
                    row |= {"check_scores": scores, "section_scores": sections,
                            "score": sum(c["score"] for c in scores.values()),
                            "max_score": sum(c["max_score"] for c in scores.values()), "fast": rng.random() < 0.05,
                            "started_at": created, "finished_at": created + timedelta(seconds=45),
                            "report_path": f"submissions/{row['id']}/1/1/report.pdf",
                            "result_path": f"submissions/{row['id']}/1/1/result.json"}  # fmt: skip
                elif status == Status.failed:
                    row |= {"summary": "The file defines no model the lab asks for: nothing could be graded.",
                            "error": "Traceback (most recent call last):\n  ...\nAttributeError: no MLP",
                            "started_at": created, "finished_at": created + timedelta(seconds=5)}  # fmt: skip
                values.append(row)
            for start in range(0, len(values), 1000):
                s.execute(insert(Submission), values[start : start + 1000])
            questions = spec.questions
            grades = [{"student_pk": pk, "assignment_id": assignment, "question_id": q.id,
                       "points": round(rng.uniform(0, q.points) * 2) / 2, "comment": "ok" if rng.random() < 0.3 else "",
                       "grader": INSTRUCTOR[0], "graded_at": now}
                      for pk in order[::2] for q in questions if rng.random() < 0.7]  # fmt: skip
            if grades:
                s.execute(insert(ManualGrade), grades)
            texts = [{"student_pk": pk, "assignment_id": assignment, "question_id": q.id, "draft": "",
                      "saved_at": now, "text": f"An answer to {q.title}. " * 12, "submitted_at": now, "late": False}
                     for pk in order if rng.random() < answered for q in questions if rng.random() < 0.8]  # fmt: skip
            if texts:
                s.execute(insert(Answer), texts)
    first = issued[0]
    return {"assignment": assignment, "students": students, "submissions": submissions,
            "student_pk": pks[first.student_id], "student_id": first.student_id, "token": first.token,
            "email": INSTRUCTOR[0], "password": INSTRUCTOR[1]}  # fmt: skip


def serve(db_url: str, folder: Path) -> tuple[Process, str]:
    """`labgrader serve` on a free loopback port over the database; (process, base URL) once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABGRADER_")} | {
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "LABGRADER_STORAGE_DIR": str(folder / "storage"), "LABGRADER_DATABASE_URL": db_url,
        "LABGRADER_BROKER_URL": BROKER, "LABGRADER_QUEUE": f"bench-dashboard-{uuid.uuid4().hex[:10]}",
        "LABGRADER_HOST": "127.0.0.1", "LABGRADER_PORT": str(port), "LABGRADER_SECRET_KEY": uuid.uuid4().hex,
        "LABGRADER_SWEEP_INTERVAL_SECONDS": "0", "LABGRADER_RATE_LIMIT": str(10**9),
    }  # fmt: skip
    api = Process("api", [*LABGRADER, "serve"], env, folder)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if not api.alive():
            raise BenchSetupError(f"`labgrader serve` exited ({api.popen.returncode}):\n{api.tail()}")
        try:
            return httpx.get(f"{url}/api/health", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(answers, 60, f"the API to answer on {url}/api/health (log: {api.log})")
    return api, url


def logged_in(url: str, email: str, password: str) -> httpx.Client:
    """An httpx client holding an instructor's dashboard session."""
    client = httpx.Client(base_url=url, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    if r.status_code != 303:
        raise BenchSetupError(f"the dashboard refused the bench instructor's login ({r.status_code}): {r.text[:300]}")
    return client


def _percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q / 100 * len(v) + 0.5) - 1))]  # nearest rank


def profile_in_process(db_url: str, assignment: str, n: int = 5) -> str:
    """cProfile of the grade table page's work in this thread (the route's queries, rows and template), the top 30
    functions by cumulative time, and the time each part takes."""
    from starlette.requests import Request

    from service.dashboard import routes
    from service.dashboard.grades import check_columns, grade_table, manual_max, section_columns, select_rows

    scope = {"type": "http", "method": "GET", "path": f"/dashboard/assignments/{assignment}", "query_string": b"",
             "headers": [], "session": {}}  # fmt: skip
    request = Request(scope)
    with Database(db_url) as db:

        def once() -> tuple[float, float]:
            t0 = time.perf_counter()
            with db.session() as s:
                a = s.get(Assignment, assignment)
                rows = grade_table(s, a)
                t1 = time.perf_counter()
                shown = select_rows(rows, "", "", "name", False)
                notes = {"ungraded": 0, "pending": 0, "fast": 0}
                routes.page(request, "grades.html.j2", me=Instructor(email="x"), a=a, rows=shown, total=len(rows),
                            columns=check_columns(a), sections=section_columns(a), sort="name", desc=False,
                            filter="", q="", filters={}, msg="", err="", formats={}, written_max=manual_max(a),
                            notes=notes, since="0")  # fmt: skip
            return t1 - t0, time.perf_counter() - t1

        once()
        prof = cProfile.Profile()
        prof.enable()
        parts = [once() for _ in range(n)]
        prof.disable()
    out = io.StringIO()
    out.write(
        f"queries and rows: {1000 * statistics.median(p[0] for p in parts):.0f} ms; "
        f"render: {1000 * statistics.median(p[1] for p in parts):.0f} ms (medians of {n}, under cProfile)\n"
    )
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def bench_dashboard(quick: bool) -> Row:
    """p50 and p99 of the grade table page over sequential requests (one logged-in client, after 5 warm-up
    requests each), the 500-student page and the 50-student page taking turns so that both see the same machine."""
    requests = 30 if quick else 200
    students, subs = (100, 1000) if quick else (500, 5000)
    with tempfile.TemporaryDirectory(prefix="labgrader-bench-dashboard-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        db_url = f"sqlite:///{folder / 'course.sqlite'}"
        t0 = time.perf_counter()
        big = build_course(db_url, students=students, submissions=subs, assignment="init-reg", seed=1, answered=0.6)
        small = build_course(db_url, students=students // 10, submissions=subs // 10, assignment="small-course",
                             seed=2, answered=0.6)  # fmt: skip
        built = time.perf_counter() - t0
        api, url = serve(db_url, folder)
        try:
            client = logged_in(url, big["email"], big["password"])
            try:
                times: dict[str, list[float]] = {"big": [], "small": []}
                sizes = {}
                for _ in range(5):
                    for key, course in (("big", big), ("small", small)):
                        r = client.get(f"/dashboard/assignments/{course['assignment']}")
                        n = r.text.count("data-student=")
                        if r.status_code != 200 or n != course["students"]:
                            raise AssertionError(f"the grade table of {course['assignment']} answered "
                                                 f"{r.status_code} with {n} rows")  # fmt: skip
                        sizes[key] = len(r.content)
                for _ in range(requests):
                    for key, course in (("big", big), ("small", small)):
                        start = time.perf_counter()
                        r = client.get(f"/dashboard/assignments/{course['assignment']}")
                        times[key].append((time.perf_counter() - start) * 1000)
                        if r.status_code != 200:
                            raise AssertionError(f"GET the grade table answered {r.status_code}")
            finally:
                client.close()
        finally:
            api.stop()
    stats = {k: {"p50": statistics.median(v), "p90": _percentile(v, 90), "p99": _percentile(v, 99), "max": max(v)}
             for k, v in times.items()}  # fmt: skip
    b, s = stats["big"], stats["small"]
    what = (
        f"GET /dashboard/assignments/{{id}} (the grade table, logged in) of {students} students and {subs:,} "
        f"submissions from `labgrader serve` (SQLite): p50 {b['p50']:.0f} ms, p99 {b['p99']:.0f} ms over {requests} "
        f"sequential requests; baseline: the same page of a {students // 10}-student course (p99 {s['p99']:.0f} ms), "
        "so the ratio (below 1) is what 10x the course costs"
    )

    def line(label: str, st: dict, size: int) -> str:
        return (f"| {label} | {st['p50']:.1f} | {st['p90']:.1f} | {st['p99']:.1f} | {st['max']:.1f} | "
                f"{size / 1024:.0f} KiB |")  # fmt: skip

    details = [
        f"One SQLite file made by `bench.dashboard.build_course` ({built:.1f} s): the {students}-student course on "
        f"the built-in lab (8 scored checks, 4 sections, 5 written questions) with {subs:,} submissions, 88% graded "
        "with check_scores and section_scores as a worker stores them (5% of them with the fast budgets), 8% failed "
        "with a summary, 4% queued or running, written answers from 60% of the students, manual grades "
        f"for half the students; and a {students // 10}-student course with {subs // 10:,}. One `labgrader serve` "
        f"process (uvicorn) on loopback; one httpx client logged in as an instructor requests the two pages in "
        f"turn, {requests} times each after 5 warm-up rounds, on this machine's {os.cpu_count()} CPUs (shared).",
        "",
        "| page | p50 ms | p90 ms | p99 ms | max ms | size |",
        "|---|---:|---:|---:|---:|---:|",
        line(f"{students // 10} students (baseline)", s, sizes["small"]),
        line(f"{students} students (ours)", b, sizes["big"]),
        "",
        "Where the time goes: `python -m bench.dashboard` builds the 500-student course and prints a cProfile of "
        "the page's work in-process (queries and rows, then the template).",
    ]
    return Row("dashboard", s["p99"], b["p99"], what, unit="ms p99", details=details)


if __name__ == "__main__":  # a profile of the page: python -m bench.dashboard
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'course.sqlite'}"
        build_course(url, answered=0.6)
        print(profile_in_process(url, "init-reg"))
