"""What a worker does with one message: claim the submission, grade it with the sandboxed grader while a
heartbeat renews the lease and publishes progress, store result and report, and finish, all conditional on
still holding the submission."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from pathlib import Path

import torch

from grader.assignment import AssignmentError, load_assignment
from grader.device import cpu_count
from grader.grading import GradingError, grade
from grader.result import GradeResult
from reports.render import render_pdf
from service.db import Database
from service.lifecycle import Claim, LeaseLost, attempts_of_generation, claim, finish, heartbeat
from service.models import Assignment, Status, Submission
from service.settings import Settings
from service.storage import Storage, write_atomic

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Renews the lease every `interval` seconds and writes the latest progress; remembers a lost lease so
    that the grading can stop at its next progress report."""

    def __init__(self, db: Database, c: Claim, settings: Settings) -> None:
        self.db, self.claim, self.settings = db, c, settings
        self.progress: tuple[float, str] | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, what: str, step: int, total: int) -> None:
        """The grader's progress callback: kept for the next beat; raises once the lease is lost."""
        if self.lost.is_set():
            raise LeaseLost(self.claim.submission_id)
        self.progress = (step / total if total else 0.0, what)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            self.beat()

    def beat(self) -> None:
        fraction, step = self.progress or (None, None)
        try:
            heartbeat(self.db, self.claim, self.settings.lease_seconds, fraction, step)
        except LeaseLost:
            self.lost.set()
        except Exception as e:  # the database may be briefly unreachable; the lease has slack for that
            log.warning("heartbeat for %s failed: %s", self.claim.submission_id, e)


def grading_cpus(settings: Settings) -> int:
    """CPUs one grading may use: GRADING_CPUS, or this machine's shared among the worker's concurrent gradings.
    Sandbox tasks beyond the CPUs only thrash the caches: on 2 CPUs, two workers running two tasks each did 27%
    less work per second than one (docs/benchmarks.md, workers)."""
    if settings.grading_cpus > 0:
        return settings.grading_cpus
    return max(1, cpu_count() // max(1, settings.worker_concurrency))


def grade_submission(db: Database, settings: Settings, submission_id: str, generation: int) -> str:
    """Grade one generation of a submission unless another attempt has it or had it; returns what happened
    (for the worker's log): 'done', 'failed', 'skipped' or 'superseded'."""
    c = claim(db, submission_id, generation, worker_name(), settings.lease_seconds)
    if c is None:
        return "skipped"
    if attempts_of_generation(db, c) > settings.max_attempts:  # a file that kills every worker that grades it
        won = finish(
            db,
            c,
            Status.failed,
            error=f"Grading was interrupted {settings.max_attempts} times (the "
            "worker died or hit the time limit); it is not retried again. An instructor can regrade it.",
        )
        return "failed" if won else "superseded"
    storage = Storage(settings.storage_dir)
    with db.session() as s:
        sub = s.get(Submission, submission_id)
        assignment = s.get(Assignment, sub.assignment_id)
        student, filename, config_path = sub.student.name, sub.filename, assignment.config_path
    out = storage.attempt_dir(submission_id, c.generation, c.attempt)
    out.mkdir(parents=True, exist_ok=True)
    with Heartbeat(db, c, settings) as beat:
        try:
            spec = load_assignment(Path(config_path) if config_path else None)
            upload = out / filename  # the student's file name, so that reports and tracebacks show it
            upload.write_bytes(storage.upload_path(submission_id).read_bytes())
            cpus = grading_cpus(settings)
            torch.set_num_threads(cpus)  # the trusted side's own tensor work stays within the grading's share too
            result = grade(upload, spec, device=settings.device, fast=settings.fast, data_dir=settings.data_dir,
                           progress=beat.report, cpus=cpus)  # fmt: skip
        except LeaseLost:
            finish(db, c, Status.failed)  # records the attempt as superseded; the submission is not touched
            return "superseded"
        except (GradingError, AssignmentError) as e:
            log.error("grading %s failed: %s", submission_id, e)
            won = finish(db, c, Status.failed, error=f"The grader could not run: {e}")
            return "failed" if won else "superseded"
        except Exception as e:  # SoftTimeLimitExceeded included: record it, never leave the lease dangling
            log.exception("grading %s crashed", submission_id)
            won = finish(db, c, Status.failed, error=f"Grading stopped: {type(e).__name__}: {e}")
            return "failed" if won else "superseded"
        result.submission.student = student
        beat.progress = (1.0, "writing the report")
        values = store_outputs(storage, out, result)
    won = finish(db, c, Status.done, **values)
    return "done" if won else "superseded"


def store_outputs(storage: Storage, out: Path, result: GradeResult) -> dict:
    """result.json and report.pdf in the attempt's folder; a report that fails to render is noted, and the
    grade is kept."""
    result_path = out / "result.json"
    write_atomic(result_path, result.model_dump_json(indent=1).encode("utf-8"))
    values = {
        "score": result.score,
        "max_score": result.max_score,
        "result_path": storage.relative(result_path),
        "check_scores": {c.id: {"score": c.score, "max_score": c.max_score, "status": c.status} for c in result.checks},
        "section_scores": {
            s.id: {"title": s.title, "score": s.score, "max_score": s.max_score} for s in result.sections
        },
    }
    t0 = time.monotonic()
    try:
        report = render_pdf(result, out / "report.pdf")
        values["report_path"] = storage.relative(report)
        log.info("report for %s rendered in %.1f s", result.submission.filename, time.monotonic() - t0)
    except Exception as e:
        (out / "report-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        values["error"] = f"The report could not be rendered ({type(e).__name__}); the grade is kept."
    return values
