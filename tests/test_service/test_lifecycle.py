"""Exactly-once grading in the database, on SQLite and PostgreSQL: claims, leases, takeovers, regrades, sweeps."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from service.intake import store_submission
from service.jobs import grade_submission
from service.lifecycle import LeaseLost, claim, finish, heartbeat, regrade, sweep
from service.models import Assignment, GradingAttempt, Outcome, Status, Student, Submission
from service.storage import Storage

from .kit import enroll


@pytest.fixture
def sid(db, settings) -> str:
    enroll(db, 1)
    with db.session() as s:
        student = s.scalars(select(Student)).one()
        return store_submission(s, Storage(settings.storage_dir), student, s.get(Assignment, "init-reg"),
                                "lab.py", b"x = 1\n").id  # fmt: skip


def attempts(db, sid) -> list[tuple[int, int, Outcome]]:
    with db.session() as s:
        rows = s.scalars(select(GradingAttempt).where(GradingAttempt.submission_id == sid).order_by("attempt"))
        return [(a.generation, a.attempt, a.outcome) for a in rows]


def row(db, sid) -> Submission:
    with db.session() as s:
        return s.get(Submission, sid)


def test_one_claim_wins_and_a_redelivery_finds_nothing_to_do(db, sid):
    first = claim(db, sid, 1, "w1", lease_seconds=60)
    assert first is not None and first.attempt == 1
    assert claim(db, sid, 1, "w2", lease_seconds=60) is None  # live lease: the duplicate is dropped
    assert finish(db, first, Status.done, score=3.0, max_score=95.0)
    assert claim(db, sid, 1, "w2", lease_seconds=60) is None  # graded: a redelivered message does nothing
    assert (row(db, sid).status, row(db, sid).score) == (Status.done, 3.0)
    assert attempts(db, sid) == [(1, 1, Outcome.done)]


def test_concurrent_claims_have_a_single_winner(db, sid):
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda i: claim(db, sid, 1, f"w{i}", 60), range(16)))
    assert sum(c is not None for c in claims) == 1
    assert attempts(db, sid) == [(1, 1, Outcome.running)]


def test_an_expired_lease_is_taken_over_and_the_old_attempt_cannot_write(db, sid):
    old = claim(db, sid, 1, "dead", lease_seconds=0.2)
    time.sleep(0.3)
    new = claim(db, sid, 1, "alive", lease_seconds=60)
    assert new is not None and new.attempt == 2
    with pytest.raises(LeaseLost):
        heartbeat(db, old, 60, 0.5, "still here?")
    assert not finish(db, old, Status.done, score=1.0)
    heartbeat(db, new, 60, 0.25, "sweep 40%")
    assert (row(db, sid).progress, row(db, sid).step) == (0.25, "sweep 40%")
    assert finish(db, new, Status.done, score=2.0)
    assert row(db, sid).score == 2.0
    assert attempts(db, sid) == [(1, 1, Outcome.superseded), (1, 2, Outcome.done)]


def test_a_regrade_starts_a_new_generation_and_stops_the_running_one(db, sid):
    running = claim(db, sid, 1, "w1", 60)
    assert regrade(db, [sid, "no-such-id"]) == [(sid, 2)]
    with pytest.raises(LeaseLost):
        heartbeat(db, running, 60)
    assert claim(db, sid, 1, "w1", 60) is None  # a message of the old generation
    second = claim(db, sid, 2, "w2", 60)
    assert second is not None and finish(db, second, Status.done, score=5.0)
    assert attempts(db, sid) == [(1, 1, Outcome.superseded), (2, 2, Outcome.done)]


def test_the_sweep_requeues_lost_gradings_and_queued_ones_missing_from_the_broker(db, sid):
    c = claim(db, sid, 1, "w1", lease_seconds=0.1)
    time.sleep(0.2)
    report = sweep(db, requeue_after_seconds=3600, in_broker=set())
    assert report.lost == [sid] and report.resent == []
    assert row(db, sid).status == Status.queued
    assert attempts(db, sid) == [(1, 1, Outcome.lost)]
    assert not finish(db, c, Status.done)  # the lost worker comes back too late: its output is discarded
    assert sweep(db, requeue_after_seconds=0, in_broker={sid}).resent == []  # still in the broker
    assert sweep(db, requeue_after_seconds=0, in_broker=set()).resent == [sid]
    assert sweep(db, requeue_after_seconds=3600, in_broker=set()).resent == []  # just sent: not again yet


def test_a_submission_that_keeps_killing_its_workers_is_failed_not_retried_forever(db, sid, settings):
    for _ in range(settings.max_attempts):
        assert claim(db, sid, 1, "doomed", lease_seconds=0.05) is not None
        time.sleep(0.1)
        sweep(db, requeue_after_seconds=3600, in_broker=set())
    assert grade_submission(db, settings, sid, 1) == "failed"
    sub = row(db, sid)
    assert sub.status == Status.failed and "interrupted 3 times" in sub.error
    assert [o for *_, o in attempts(db, sid)] == [Outcome.lost] * 3 + [Outcome.failed]


def test_stored_progress_never_goes_down_and_is_1_only_when_done(db, sid):
    c = claim(db, sid, 1, "w1", lease_seconds=60)
    heartbeat(db, c, 60, 0.5, "half")
    heartbeat(db, c, 60, 0.3, "a late report of a slower task")  # lower: the stored fraction stays
    assert (row(db, sid).progress, row(db, sid).step) == (0.5, "a late report of a slower task")
    heartbeat(db, c, 60, 1.0, "scoring")  # 1 means done: a running grading stays below
    assert 0.5 < row(db, sid).progress < 1.0
    assert finish(db, c, Status.failed, error="x")
    assert row(db, sid).progress < 1.0  # failed, not done
    (again,) = regrade(db, [sid])
    assert row(db, sid).progress == 0.0  # a new generation starts from 0
    c = claim(db, sid, again[1], "w2", lease_seconds=0.2)
    heartbeat(db, c, 0.2, 0.4)
    time.sleep(0.3)
    assert sweep(db, 60, set()).lost == [sid]
    c = claim(db, sid, again[1], "w3", lease_seconds=60)  # another attempt of the same generation
    assert row(db, sid).progress == 0.4
    heartbeat(db, c, 60, 0.1)
    assert row(db, sid).progress == 0.4
    assert finish(db, c, Status.done, score=1.0)
    assert row(db, sid).progress == 1.0
