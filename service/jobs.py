"""What a worker does with one message: claim the submission, grade it with the sandboxed grader while a
heartbeat renews the lease and publishes progress, store result and report, and finish, all conditional on
still holding the submission."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch
from celery.exceptions import SoftTimeLimitExceeded

from grader.assignment import AssignmentError, load_assignment
from grader.device import cpu_count
from grader.grading import GradingError, grade
from grader.result import GradeResult
from grader.text import clean
from reports.render import WrittenAnswer, render_pdf
from service.db import Database
from service.lifecycle import Claim, LeaseLost, attempts_of_generation, claim, finish, heartbeat
from service.models import Assignment, Status, Submission
from service.portal.answers import for_report as written_answers
from service.settings import Settings
from service.storage import Storage, write_atomic

log = logging.getLogger(__name__)


GRADING_SHARE = 0.95  # of a submission's progress: the grading; the report and storing the result are the rest


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
        """The grader's progress callback: kept for the next beat; raises once the lease is lost. The grading
        itself is the first GRADING_SHARE of the submission's progress (the report is the rest, and 1.0 is
        written only by finish()); a lower fraction than the last one keeps the last one."""
        if self.lost.is_set():
            raise LeaseLost(self.claim.submission_id)
        self.publish(GRADING_SHARE * (min(1.0, step / total) if total > 0 else 0.0), what)

    def publish(self, fraction: float, what: str) -> None:
        """Keep `fraction` and `what` for the next beat; the fraction never goes down."""
        last = self.progress[0] if self.progress is not None else 0.0
        self.progress = (max(last, fraction), what)

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
            summary=f"The grader stopped: grading was interrupted {settings.max_attempts} times (the worker died or "
            "hit the time limit).",
        )
        return "failed" if won else "superseded"
    storage = Storage(settings.storage_dir)
    with db.session() as s:
        sub = s.get(Submission, submission_id)
        assignment = s.get(Assignment, sub.assignment_id)
        student, filename, config_path = sub.student.name, sub.filename, assignment.config_path
        student_pk, assignment_id = sub.student_pk, sub.assignment_id
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
            won = finish(db, c, Status.failed, error=f"The grader could not run: {e}", summary=failure_summary(e))
            return "failed" if won else "superseded"
        except Exception as e:  # SoftTimeLimitExceeded included: record it, never leave the lease dangling
            log.exception("grading %s crashed", submission_id)
            won = finish(db, c, Status.failed, error=f"Grading stopped: {type(e).__name__}: {e}",
                         summary=failure_summary(e))  # fmt: skip
            return "failed" if won else "superseded"
        result.submission.student = student
        beat.publish(GRADING_SHARE, "writing the report")
        with db.session() as s:  # the written answers submitted by now: the report prints them
            answers = written_answers(s, student_pk, s.get(Assignment, assignment_id))
        values = store_outputs(storage, out, result, answers)
    won = finish(db, c, Status.done, **values)
    return "done" if won else "superseded"


STOPPED = {  # failure kinds where the grader stopped the student's code at a limit
    "timeout": "time limit",
    "cpu_time": "CPU-time limit",
    "memory": "memory limit",
    "idle": "idle-time limit",
    "process_limit": "process limit",
    "output_limit": "output limit",
}
SUMMARY_LIMIT = 300
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`'\"(])")


def first_sentence(text: str) -> str:
    """The first sentence of `text` (up to a period, question or exclamation mark followed by a capital)."""
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()


def _sentence(text: str) -> str:
    text = clean(text, SUMMARY_LIMIT)
    return text if text.endswith((".", "!", "?", "…")) else f"{text}."


def _with_name(message: str, filename: str) -> str:
    """The failure's first sentence, saying which file it is about."""
    sentence = first_sentence(message)
    if sentence.startswith("Your file "):
        return f"Your file {filename} {sentence[len('Your file ') :]}"
    if "your file" in sentence:
        return sentence.replace("your file", f"your file {filename}", 1)
    return f"{filename}: {sentence}"


def summarize(result: GradeResult) -> str | None:
    """One sentence saying why a grading got no points (None when it got some): the file could not be run
    (a syntax error, an import error, a limit the grader stopped it at) or no check passed (the first check's
    reason). Built from the result, whose texts the grader has cleaned; cleaned again to SUMMARY_LIMIT."""
    if result.score > 0:
        return None
    name = result.submission.filename
    failure = result.submission.load_failure
    if failure is not None:
        if failure.kind in STOPPED:
            detail = re.sub(r"^Your (file|code) ", "it ", first_sentence(failure.message)).rstrip(".")
            return _sentence(f"The grader stopped your file {name}: {STOPPED[failure.kind]} ({detail})")
        return _sentence(_with_name(failure.message, name))
    reasons = [c for c in result.checks if c.status != "passed" and c.max_score > 0] or result.checks
    if not reasons:
        return _sentence(f"No check was run on {name}")
    first = reasons[0]
    why = first.failure.message if first.failure is not None and first.status == "error" else first.message
    if first.failure is not None and first.failure.kind in STOPPED:
        why = f"the grader stopped your code: {STOPPED[first.failure.kind]}"
    return _sentence(f"No check passed: {first.title}: {first_sentence(why).rstrip('.')}")


def failure_summary(error: BaseException) -> str:
    """One sentence for a grading that failed (the grader, not the submission, could not go on)."""
    if isinstance(error, SoftTimeLimitExceeded):
        return "The grader stopped: time limit (the whole grading took too long); your instructor can regrade it."
    if isinstance(error, GradingError | AssignmentError):
        return _sentence(f"The grader could not run ({first_sentence(str(error)).rstrip('.')}); your instructor "
                         "can regrade it")  # fmt: skip
    return _sentence(f"The grader stopped with an error ({type(error).__name__}); your instructor can regrade it")


def store_outputs(storage: Storage, out: Path, result: GradeResult, answers: Sequence[WrittenAnswer] = ()) -> dict:
    """result.json, report.pdf and the same report as report.html (the portal shows it in the page) in the
    attempt's folder, with the written answers at the end; a report that fails to render is noted, and the grade
    is kept."""
    result_path = out / "result.json"
    write_atomic(result_path, result.model_dump_json(indent=1).encode("utf-8"))
    values = {
        "score": result.score,
        "max_score": result.max_score,
        "summary": summarize(result),
        "fast": result.fast_mode,
        "result_path": storage.relative(result_path),
        "check_scores": {c.id: {"score": c.score, "max_score": c.max_score, "status": c.status} for c in result.checks},
        "section_scores": {
            s.id: {"title": s.title, "score": s.score, "max_score": s.max_score} for s in result.sections
        },
    }
    t0 = time.monotonic()
    try:
        report = render_pdf(result, out / "report.pdf", answers=answers, html_out=out / "report.html")
        values["report_path"] = storage.relative(report)
        log.info("report for %s rendered in %.1f s", result.submission.filename, time.monotonic() - t0)
    except Exception as e:
        (out / "report-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        values["error"] = f"The report could not be rendered ({type(e).__name__}); the grade is kept."
    return values
