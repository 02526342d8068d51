"""grade(): one submission file in, one scored GradeResult out. Student code runs only in sandbox children."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from grader.assignment import Assignment, load_assignment
from grader.batchnorm_teacher import teacher_model
from grader.built import Built, validated
from grader.checks import CHECKS
from grader.checks.base import CheckSpec, not_run
from grader.data import CircleData, MnistData, load_mnist
from grader.data.mnist import FASHION_MNIST_DEFAULT
from grader.device import cpu_count, resolve_device
from grader.result import (
    CheckResult,
    Dataset,
    Failure,
    GradeResult,
    IsolationInfo,
    RunTiming,
    SectionScore,
    Submission,
)
from grader.sandbox import detect_isolation, run_task
from grader.sandbox.cgroups import GradingCgroup, grading_cgroup
from grader.session import Session, build_plan, task_limits
from grader.text import NAME_LIMIT, TRACEBACK_LIMIT, clean, clean_check

GRADER_VERSION = "0.1.0"
CONTRACT = ("circle_model", "SIGMAS", "deep_model", "mnist_model", "fold_batchnorm", "tanh_model")
MAX_SUBMISSION_BYTES = 1_000_000

Progress = Callable[[str, int, int], None]  # (what, step, total)
log = logging.getLogger(__name__)
PROGRESS_STEPS = 1000  # the resolution of the overall fraction passed to a Progress callback
RUNS_END = 0.98  # of a grading's progress, when its sandbox runs are done (scoring the checks is the rest)


class Monotone:
    """The grading's progress callback as an overall fraction that never goes back: what is reported is
    `what` and round(fraction * PROGRESS_STEPS) of PROGRESS_STEPS, and a fraction below the last one reported
    keeps the last one (the text still changes). Sandbox tasks report from several threads: calls are serialized."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, what: str, fraction: float) -> None:
        if self._progress is None:
            return
        with self._lock:
            step = round(max(0.0, min(1.0, fraction)) * PROGRESS_STEPS)
            self._last = max(self._last, step)
            self._progress(what, self._last, PROGRESS_STEPS)

    def scaled(self, start: float, end: float) -> Callable[[str, float], None]:
        """A callback for the part of the grading from `start` to `end`: its 0..1 maps to start..end."""
        return lambda what, fraction: self(what, start + (end - start) * fraction)


def build_share(a: Assignment) -> float:
    """The part of a grading's work that building the models is: the build's share of the reference solution's
    CPU time (between 5% and 50%; 10% without reference costs)."""
    costs = a.limits.reference_cpu_seconds
    total = sum(costs.values())
    return max(0.05, min(0.5, costs.get("build", 0.0) / total)) if total > 0 else 0.1


class GradingError(RuntimeError):
    """The grader itself cannot run (missing data, bad assignment); never caused by a submission's content."""


def data_dir_from_env(data_dir: Path | None) -> Path | None:
    if data_dir is not None:
        return data_dir
    env = os.environ.get("LABGRADER_DATA_DIR")
    return Path(env) if env else None


def outermost(paths: set[Path]) -> list[Path]:
    """The folders to hide from the sandbox, without those inside another one (masking the outer hides them)."""
    resolved = sorted({p.resolve() for p in paths})
    return [p for p in resolved if not any(q != p and p.is_relative_to(q) for q in resolved)]


def read_submission(path: Path) -> tuple[Submission, Failure | None]:
    """Identity of the file and whether it can be graded at all (size, encoding)."""
    raw = path.read_bytes()
    sub = Submission(filename=path.name, sha256=hashlib.sha256(raw).hexdigest(), size_bytes=len(raw))
    if len(raw) > MAX_SUBMISSION_BYTES:
        return sub, Failure(
            kind="too_large",
            message=f"The file is {len(raw)} bytes; submissions are limited to "
            f"{MAX_SUBMISSION_BYTES} bytes. Submit only your Python source, without data or weights.",
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return sub, Failure(
            kind="encoding",
            message=f"The file is not UTF-8 text (byte {e.start}); save it as a UTF-8 Python file.",
        )
    return sub, None


@dataclass(frozen=True)
class Setup:
    """Everything trusted that a grading run needs before any student code runs."""

    assignment: Assignment
    device: str
    circle: CircleData
    mnist: MnistData
    hidden: list[Path]  # folders the sandbox must not see (they hold labels)


def prepare(assignment: Assignment, device: str, data_dir: Path | None, gpu_budgets: bool = True) -> Setup:
    """The trusted data and settings of a grading; on a GPU the assignment's [mnist.gpu] budgets apply (unless
    `gpu_budgets` is False: fast mode keeps its small ones)."""
    a = assignment
    device = resolve_device(device)
    if gpu_budgets and device.startswith("cuda"):
        a = a.model_copy(update={"mnist": a.mnist.on_gpu()})
    configured = Path(a.mnist.data_dir) if a.mnist.data_dir else None
    data_dir = data_dir_from_env(data_dir or configured)
    try:
        mnist = load_mnist(data_dir, a.mnist.n_train, a.mnist.n_val)
    except (FileNotFoundError, ValueError) as e:
        raise GradingError(str(e)) from e
    hidden = outermost({Path(mnist.source), FASHION_MNIST_DEFAULT.parent} | ({data_dir} if data_dir else set()))
    circle = CircleData.make(a.circle.n_train, a.circle.n_val, a.seed)
    return Setup(a, device, circle, mnist, hidden)


def build(
    submission: Path, setup: Setup, group: GradingCgroup | None = None, threads: int = 1
) -> tuple[Submission, Built | None, RunTiming | None]:
    """Check the file, then run it once in the sandbox to build every model the checks need (as graphs)."""
    sub, failure = read_submission(submission)
    built, timing = None, None
    if failure is None:
        a = setup.assignment
        plan = build_plan(check.models(a, setup.mnist is not None) for check in CHECKS)
        teacher, spec = teacher_model(a.seed)
        state = {f"teacher/{k}": v.detach().numpy() for k, v in teacher.state_dict().items()}
        limits = task_limits(a.limits, "build", threads)
        reply = run_task(
            submission, "build", params={
                "models": plan, "fold": {"spec": spec, "input": spec[0]["in"]},
                # each factory gets a share of the build's CPU, so that a slow one costs only its own checks
                "factory_cpu_seconds": limits.cpu_seconds / 4,
            },
            inputs=state, limits=limits, device="cpu", hidden_paths=setup.hidden, group=group, threads=threads,
        )  # fmt: skip
        timing = RunTiming(
            name="build", task="build", seconds=reply.wall_seconds, ok=reply.ok, started_s=None,
            cpu_seconds=reply.cpu_seconds, memory_peak_mb=reply.memory_peak_mb,
        )  # fmt: skip
        if reply.ok:
            built = validated(reply, plan)
            sub.names = built.names
        else:
            assert reply.failure is not None
            f = reply.failure
            failure = Failure(kind=f.kind, message=f.message, traceback=f.traceback)
    sub.load_failure = failure
    return sub, built, timing


def grade(
    submission: Path,
    assignment: Assignment | None = None,
    *,
    device: str = "auto",
    fast: bool = False,
    data_dir: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    cpus: int | None = None,
) -> GradeResult:
    """Grade one submission file. Raises GradingError only when the grader cannot run; anything wrong with
    the submission ends up in the result. `cpus` (default: the machine's) is what this grading may use: its
    sandbox tasks (`workers` at once, default min(2, cpus)) share them as torch threads."""
    started, t0 = datetime.now(UTC), time.monotonic()
    assignment = assignment or load_assignment()
    if fast:
        assignment = assignment.fast_budgets()
    report = Monotone(progress)
    setup = prepare(assignment, device, data_dir, gpu_budgets=not fast)
    a = setup.assignment
    report("building your models", 0.0)
    share = build_share(a)
    cpus = max(1, cpus or cpu_count())
    lanes = workers or min(2, cpus)
    threads = max(1, cpus // lanes)
    # Every sandboxed task of this grading shares its CPUs and its CPU budget.
    with grading_cgroup(cpus, a.limits.grading_cpu_budget(threads)) as group:
        sub, built, loaded = build(submission, setup, group, threads)
        if sub.load_failure is not None or built is None:
            checks = [c.described(not_run(c.id, c.title, a.max_points(c.id), sub.load_failure, "Your file"))
                      for c in CHECKS]  # fmt: skip
            runs: list[RunTiming] = []
        else:
            report("running your models", share)
            checks, runs = _run_checks(built, setup, lanes, threads, report.scaled(share, RUNS_END), group)
        runs = ([loaded] if loaded is not None else []) + runs
    datasets = [
        Dataset(name="circle", source="generated (the lab template's generator)", n_train=a.circle.n_train,
                n_val=a.circle.n_val),
        Dataset(name=setup.mnist.name, source=setup.mnist.source, n_train=a.mnist.n_train, n_val=a.mnist.n_val),
    ]  # fmt: skip
    isolation = detect_isolation(task_limits(a.limits, "build", threads))
    report("scoring", 1.0)
    return GradeResult(
        grader_version=GRADER_VERSION, assignment_id=a.id, assignment_title=a.title, submission=sub,
        started_at=started, finished_at=datetime.now(UTC), seconds=time.monotonic() - t0, device=setup.device,
        seed=a.seed, fast_mode=fast, isolation=IsolationInfo(**isolation.model_dump()), datasets=datasets,
        checks=checks, runs=runs, score=sum(c.score for c in checks), max_score=sum(c.max_score for c in checks),
        sections=section_scores(a, checks),
    )  # fmt: skip


def section_scores(a: Assignment, checks: list[CheckResult]) -> list[SectionScore]:
    """The points of each of the assignment's sections. A check that could not run has no items: its items
    count in their sections with their full weight and no points."""
    sections = {s.id: SectionScore(id=s.id, title=s.title, score=0.0, max_score=0.0) for s in a.sections}
    for check in checks:
        items = [(i.id, i.points, i.max_points) for i in check.items] or [
            (name, 0.0, points) for name, points in a.points.get(check.id, {}).items()
        ]
        for item_id, points, max_points in items:
            section = sections.get(a.section_of(check.id, item_id) or "")
            if section is None:
                continue
            section.score += points
            section.max_score += max_points
            if check.id not in section.checks:
                section.checks.append(check.id)
    return list(sections.values())


def _run_checks(
    built: Built,
    setup: Setup,
    workers: int,
    threads: int,
    report: Callable[[str, float], None],
    group: GradingCgroup | None,
) -> tuple[list[CheckResult], list[RunTiming]]:
    """Start every sandbox task (`workers` at a time), then score each check from the runs it needs.
    `report(what, fraction)` gets the fraction of the sandbox work done: each child's own fraction weighted
    by its share of the work (Session.weights), counted once every child is queued (before that, a child that
    reports early would stand for the whole)."""
    fractions: dict[str, float] = {}
    lock = threading.Lock()  # sandbox tasks report from the session's worker threads
    queued = False

    def publish() -> None:
        weights = session.weights
        total = sum(weights.values())
        done = sum(w * fractions.get(label, 0.0) for label, w in weights.items())
        running = ", ".join(f"{n} {fractions.get(n, 0.0):.0%}" for n in weights if fractions.get(n, 0.0) < 1)
        report(f"running your models: {running or 'scoring'}", done / total if total > 0 else 1.0)

    def on_progress(label: str, fraction: float) -> None:
        with lock:
            fractions[label] = max(fractions.get(label, 0.0), min(1.0, fraction))
            if queued:
                publish()

    names = built.names
    session = Session(
        built, setup.assignment, setup.circle, setup.mnist, names=names, sigmas=built.sigmas, device=setup.device,
        workers=workers, threads=threads, hidden_paths=setup.hidden,
        on_progress=on_progress, group=group,
    )  # fmt: skip
    a = setup.assignment
    try:
        session.start_all(run for check in CHECKS for run in check.runs)
        with lock:
            queued = True
            publish()
        results = []
        for spec in CHECKS:
            t = time.monotonic()
            missing = [n for n in spec.needs if names.get(n) != "function"]
            if missing:
                f = Failure(
                    kind="missing_name",
                    message=f"Your file does not define {missing[0]}(); add it with the signature in docs/students.md.",
                )
                result = not_run(spec.id, spec.title, a.max_points(spec.id), f, spec.title)
            else:
                result = score_check(spec, session, a)
            results.append(clean_check(spec.described(result)).model_copy(update={"seconds": time.monotonic() - t}))
        runs = [
            RunTiming(
                name=r.name,
                task=r.task,
                seconds=r.reply.wall_seconds,
                ok=r.reply.ok,
                started_s=r.started_s,
                cpu_seconds=r.reply.cpu_seconds,
                memory_peak_mb=r.reply.memory_peak_mb,
            )  # fmt: skip
            for r in session.finished()
        ]
        return results, runs
    finally:
        session.close()


def score_check(spec: CheckSpec, session: Session, a: Assignment) -> CheckResult:
    """The check's result, with every text in it cleaned; whatever goes wrong while scoring it (a grader bug
    that a submission's odd data brought out) becomes this check's error, and the other checks keep their
    scores. The traceback goes to the grader's log, not to the student."""
    try:
        return clean_check(spec.fn(session, a))
    except Exception as e:
        log.error(
            "check %s could not be scored: %s",
            spec.id,
            clean(traceback.format_exc(), TRACEBACK_LIMIT, lines=True),
        )
        described = clean(e, 300)
        kind = clean(type(e).__name__, NAME_LIMIT)
        reason = f"{kind} ({described})" if described else kind
        failure = Failure(
            kind="grader_error",
            message=f"The grader could not score this: {reason}. Your code ran; the grader failed on what it "
            "returned. Your other checks are scored as usual; tell your instructor, who can regrade it.",
        )
        return CheckResult(
            id=spec.id, title=spec.title, status="error", score=0.0, max_score=a.max_points(spec.id),
            message=failure.message, failure=failure,
        )  # fmt: skip
