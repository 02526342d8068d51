"""`labgrader worker`: a Celery worker whose one task grades a submission (service.jobs does the work)."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_process_init

from grader.sandbox.priority import follow_nice
from service.db import Database
from service.jobs import grade_submission
from service.queue import TASK, make_celery
from service.settings import Settings

log = logging.getLogger(__name__)


def make_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    databases: list[Database] = []  # one per pool process, made after the fork

    def database() -> Database:
        if not databases:
            databases.append(Database(settings.sqlalchemy_url))
        return databases[0]

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_) -> None:
        databases.clear()  # a forked pool process must not reuse the parent's connections

    @app.task(name=TASK, bind=True)
    def grade(self, submission_id: str, generation: int) -> str:
        outcome = grade_submission(database(), settings, submission_id, int(generation))
        log.info("submission %s generation %s: %s", submission_id, generation, outcome)
        return outcome

    return app


def run_worker(settings: Settings, queue: str | None = None, loglevel: str = "INFO") -> None:
    """Run a worker in the foreground (blocks) on `queue` (default: the settings' queue)."""
    app = make_worker_app(settings)
    os.nice(settings.worker_nice)  # grading is batch work; the sandbox children inherit this
    if os.getsid(0) == os.getpid():  # a session, hence a scheduler autogroup, of its own (under a service manager
        follow_nice()  # or in a container): only the group's nice ranks it against the API (sandbox/priority.py)
    app.worker_main(
        [
            "worker",
            f"--queues={queue or settings.queue}",
            f"--concurrency={settings.worker_concurrency}",
            "--pool=prefork",
            f"--loglevel={loglevel}",
            f"--hostname=labgrader-{settings.device}@%h",  # the dashboard reads the device from the name
            "--without-gossip",
            "--without-mingle",  # remote control stays on: the dashboard pings the workers
        ]
    )
