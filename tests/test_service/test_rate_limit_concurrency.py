"""LABGRADER_RATE_LIMIT holds when a student's submissions arrive at once, on SQLite and PostgreSQL, against a
real `labgrader serve` with two API processes: exactly LIMIT are accepted, the rest answered 429."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from service.db import Database
from service.migrate import upgrade
from service.models import Submission

from .kit import enroll, make_settings, redis_do
from .processes import Service

LIMIT, REQUESTS = 3, 12


def at_once(url: str, token: str, n: int) -> list[httpx.Response]:
    """n submissions of one student, released together by a barrier, each on a connection of its own."""
    start, answers = threading.Barrier(n), []

    def submit(i: int) -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            files = {"file": ("lab.py", b"x = %d\n" % i)}
            headers = {"Authorization": f"Bearer {token}"}
            answers.append(
                client.post(f"{url}/api/submissions", headers=headers, files=files, data={"assignment": "init-reg"})
            )

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_concurrent_submissions_never_exceed_the_rate_limit(tmp_path, request, database):
    url = f"sqlite:///{tmp_path / 'labgrader.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    settings = make_settings(tmp_path, url, rate_limit=LIMIT, api_workers=2)
    upgrade(settings.sqlalchemy_url)
    with Database(settings.sqlalchemy_url) as db:
        alice, bob = enroll(db, 2)
    svc = Service(settings, tmp_path)
    svc.start_api()
    try:
        for token in (alice, bob):
            answers = at_once(svc.url, token, REQUESTS)
            codes = Counter(r.status_code for r in answers)
            assert codes == {202: LIMIT, 429: REQUESTS - LIMIT}, (codes, [r.text for r in answers][:3])
            refused = next(r for r in answers if r.status_code == 429)
            assert int(refused.headers["retry-after"]) > 0 and f"the limit is {LIMIT}" in refused.json()["detail"]
        with Database(settings.sqlalchemy_url) as db, db.session() as s:
            per_student = s.execute(select(Submission.student_pk, func.count()).group_by(Submission.student_pk))
            assert sorted(n for _, n in per_student) == [LIMIT, LIMIT]
    finally:
        svc.stop()
        redis_do("delete", settings.queue)
