"""Work that keeps the queue honest, shared by the API's background loop and the `labgrader` commands."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy import select

from service.db import Database
from service.lifecycle import SweepReport, regrade, sweep
from service.models import Submission
from service.queue import send, submissions_in_broker
from service.settings import Settings

log = logging.getLogger(__name__)


def sweep_once(db: Database, app: Celery, settings: Settings) -> SweepReport:
    """Queue again what no worker will grade: submissions of lost workers and queued ones the broker lost."""
    in_broker = submissions_in_broker(settings.broker_url, settings.queue)
    report = sweep(db, settings.requeue_after_seconds, in_broker)
    for sid, generation in report.to_send(db):
        send(app, settings.queue, sid, generation)
    if report.lost or report.resent:
        log.warning("sweep: %d lost by a worker, %d missing from the broker; queued again",
                    len(report.lost), len(report.resent))  # fmt: skip
    return report


def regrade_and_send(db: Database, app: Celery, settings: Settings, submission_ids: list[str]) -> int:
    pairs = regrade(db, submission_ids)
    for sid, generation in pairs:
        send(app, settings.queue, sid, generation)
    return len(pairs)


def assignment_submissions(db: Database, assignment_id: str) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Submission.id).where(Submission.assignment_id == assignment_id)))
