"""A submission's life in the database: stored, claimed by one worker under a lease, renewed, finished,
found lost or stuck by the sweep, regraded. Every change of hands is one conditional UPDATE, so a redelivered
task, a second worker or a regrade can never write a second grade for the same generation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update

from service.db import Database
from service.models import GradingAttempt, Outcome, Status, Submission, utcnow

MAX_RUNNING_PROGRESS = 0.99  # the most a running grading shows: 1 means done


@dataclass(frozen=True)
class Claim:
    """The right to grade one generation of one submission, as attempt number `attempt`."""

    submission_id: str
    generation: int
    attempt: int


class LeaseLost(Exception):
    """Another attempt or a regrade took the submission over; stop and discard what this attempt made."""


def claim(db: Database, submission_id: str, generation: int, worker: str, lease_seconds: float) -> Claim | None:
    """Take the submission if it waits for this generation, or if its holder's lease ran out; None otherwise
    (already graded, regraded since, or graded right now by a live worker)."""
    now = utcnow()
    with db.session() as s:
        row = s.execute(
            update(Submission)
            .where(
                Submission.id == submission_id,
                Submission.generation == generation,
                (Submission.status == Status.queued)
                | ((Submission.status == Status.running) & (Submission.lease_expires_at < now)),
            )
            .values(
                status=Status.running,
                attempt=Submission.attempt + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=now,
                step="starting",  # progress stays: 0 when queued, and never lower for the same generation
            )
            .returning(Submission.attempt)
        ).first()
        if row is None:
            return None
        attempt = row[0]
        s.execute(
            update(GradingAttempt)
            .where(GradingAttempt.submission_id == submission_id, GradingAttempt.outcome == Outcome.running)
            .values(outcome=Outcome.lost, finished_at=now)
        )
        s.add(GradingAttempt(submission_id=submission_id, generation=generation, attempt=attempt, worker=worker))
    return Claim(submission_id, generation, attempt)


def attempts_of_generation(db: Database, c: Claim) -> int:
    """How many attempts (this one included) have taken this generation of the submission."""
    with db.session() as s:
        return s.scalar(
            select(func.count()).where(
                GradingAttempt.submission_id == c.submission_id, GradingAttempt.generation == c.generation
            )
        )


def _held(c: Claim):
    return (
        (Submission.id == c.submission_id)
        & (Submission.generation == c.generation)
        & (Submission.attempt == c.attempt)
        & (Submission.status == Status.running)
    )


def heartbeat(
    db: Database, c: Claim, lease_seconds: float, progress: float | None = None, step: str | None = None
) -> None:
    """Renew the lease (and record progress); raises LeaseLost when the submission is no longer this attempt's.
    The stored progress never goes down (a lower value keeps the stored one) and stays below 1 (finish() writes 1
    when the submission is done)."""
    values: dict = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        p = max(0.0, min(MAX_RUNNING_PROGRESS, progress))
        values["progress"] = case((Submission.progress < p, p), else_=Submission.progress)
    if step is not None:
        values["step"] = step[:300]
    with db.session() as s:
        if s.execute(update(Submission).where(_held(c)).values(**values)).rowcount != 1:
            raise LeaseLost(c.submission_id)


def finish(db: Database, c: Claim, status: Status, **values) -> bool:
    """Record the attempt's outcome if it still holds the submission; False (and nothing written to the
    submission) when it does not. Progress becomes 1 when it is done; a failed one keeps where it stopped."""
    now = utcnow()
    if status == Status.done:
        values = {"progress": 1.0} | values
    with db.session() as s:
        won = (
            s.execute(
                update(Submission)
                .where(_held(c))
                .values(status=status, finished_at=now, lease_expires_at=None, step="", **values)
            ).rowcount
            == 1
        )
        outcome = (Outcome.done if status == Status.done else Outcome.failed) if won else Outcome.superseded
        s.execute(
            update(GradingAttempt)
            .where(GradingAttempt.submission_id == c.submission_id, GradingAttempt.attempt == c.attempt)
            .values(outcome=outcome, finished_at=now)
        )
    return won


def regrade(db: Database, submission_ids: list[str]) -> list[tuple[str, int]]:
    """Start a new generation of each submission (a running grading of the old one stops at its next
    heartbeat); returns (id, generation) pairs to send to the queue."""
    now = utcnow()
    out = []
    with db.session() as s:
        for sid in submission_ids:
            row = s.execute(
                update(Submission)
                .where(Submission.id == sid)
                .values(
                    status=Status.queued,
                    generation=Submission.generation + 1,
                    queued_at=now,
                    lease_expires_at=None,
                    progress=0.0,
                    step="",
                    error=None,
                    summary=None,
                    started_at=None,
                    finished_at=None,
                )
                .returning(Submission.generation)
            ).first()
            if row is not None:
                out.append((sid, row[0]))
        s.execute(
            update(GradingAttempt)
            .where(GradingAttempt.submission_id.in_(submission_ids), GradingAttempt.outcome == Outcome.running)
            .values(outcome=Outcome.superseded, finished_at=now)
        )
    return out


@dataclass
class SweepReport:
    lost: list[str]  # running, but the worker's lease ran out: queued again
    resent: list[str]  # queued, but missing from the broker: sent again

    def to_send(self, db: Database) -> list[tuple[str, int]]:
        ids = self.lost + self.resent
        if not ids:
            return []
        with db.session() as s:
            return [
                tuple(r) for r in s.execute(select(Submission.id, Submission.generation).where(Submission.id.in_(ids)))
            ]


def sweep(db: Database, requeue_after_seconds: float, in_broker: set[str] | None) -> SweepReport:
    """Find submissions that no worker will grade: running ones whose lease ran out (their worker died) and
    queued ones that waited longer than `requeue_after_seconds` and are not in the broker (`in_broker`: the
    submission ids the broker holds; None when it cannot be read, then every old queued one is sent again;
    a duplicate costs one claim that finds nothing to do)."""
    now = utcnow()
    with db.session() as s:
        lost = list(
            s.scalars(
                update(Submission)
                .where(Submission.status == Status.running, Submission.lease_expires_at < now)
                .values(status=Status.queued, queued_at=now, lease_expires_at=None, step="worker lost; queued again")
                .returning(Submission.id)
            )
        )
        if lost:
            s.execute(
                update(GradingAttempt)
                .where(GradingAttempt.submission_id.in_(lost), GradingAttempt.outcome == Outcome.running)
                .values(outcome=Outcome.lost, finished_at=now)
            )
        cutoff: datetime = now - timedelta(seconds=requeue_after_seconds)
        waiting = s.scalars(
            select(Submission.id).where(Submission.status == Status.queued, Submission.queued_at < cutoff)
        ).all()
        resent = [sid for sid in waiting if in_broker is None or sid not in in_broker]
        if resent:
            s.execute(update(Submission).where(Submission.id.in_(resent)).values(queued_at=now))
    return SweepReport(lost=lost, resent=resent)
