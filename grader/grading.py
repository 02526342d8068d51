"""grade(): one submission file in, one scored GradeResult out. Student code runs only in sandbox children."""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from grader.assignment import Assignment, load_assignment
from grader.checks import CHECKS
from grader.checks.base import not_run
from grader.data import CircleData, load_mnist
from grader.data.mnist import FASHION_MNIST_DEFAULT
from grader.device import cpu_count, resolve_device
from grader.result import CheckResult, Dataset, Failure, GradeResult, IsolationInfo, Submission
from grader.sandbox import Limits, detect_isolation, run_task
from grader.session import Session

GRADER_VERSION = "0.1.0"
CONTRACT = ("circle_model", "SIGMAS", "deep_model", "mnist_model", "fold_batchnorm")
MAX_SUBMISSION_BYTES = 1_000_000

Progress = Callable[[str, int, int], None]  # (what, step, total)


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


def _validated_load(meta: dict) -> tuple[dict[str, str], dict[str, float] | None]:
    """The child's report of which contract names exist, kept only in the shape the grader expects."""
    raw_names = meta.get("names") if isinstance(meta.get("names"), dict) else {}
    names = {n: str(raw_names.get(n, "missing"))[:80] for n in CONTRACT}
    sigmas = meta.get("sigmas")
    if not (isinstance(sigmas, dict) and all(isinstance(k, str) for k in sigmas)):
        return names, None
    clean = {
        k: float(v)
        for k, v in sigmas.items()
        if k in ("small", "good", "big")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and v > 0
    }
    return names, clean or None


def grade(
    submission: Path,
    assignment: Assignment | None = None,
    *,
    device: str = "auto",
    fast: bool = False,
    data_dir: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> GradeResult:
    """Grade one submission file. Raises GradingError only when the grader cannot run; anything wrong with
    the submission ends up in the result."""
    started, t0 = datetime.now(UTC), time.monotonic()
    assignment = assignment or load_assignment()
    if fast:
        assignment = assignment.fast_budgets()
    device = resolve_device(device)
    report = progress or (lambda what, step, total: None)
    data_dir = data_dir_from_env(data_dir or (Path(assignment.mnist.data_dir) if assignment.mnist.data_dir else None))
    a = assignment
    circle = CircleData.make(a.circle.n_train, a.circle.n_val, a.seed)
    try:
        mnist = load_mnist(data_dir, a.mnist.n_train, a.mnist.n_val)
    except (FileNotFoundError, ValueError) as e:
        raise GradingError(str(e)) from e
    datasets = [
        Dataset(
            name="circle",
            source="generated (lab template's generator)",
            n_train=a.circle.n_train,
            n_val=a.circle.n_val,
        ),
        Dataset(name=mnist.name, source=mnist.source, n_train=a.mnist.n_train, n_val=a.mnist.n_val),
    ]
    limits = Limits(wall_seconds=a.limits.wall_seconds, cpu_seconds=a.limits.cpu_seconds, memory_mb=a.limits.memory_mb)
    isolation = detect_isolation(limits)
    hidden = outermost({Path(mnist.source), FASHION_MNIST_DEFAULT.parent} | ({data_dir} if data_dir else set()))
    sub, failure = read_submission(submission)
    checks: list[CheckResult]
    if failure is None:
        report("loading your file", 0, 1)
        loaded = run_task(
            submission,
            "load",
            params={},
            inputs={},
            limits=limits.model_copy(update={"wall_seconds": 60}),
            device=device,
            hidden_paths=hidden,
        )
        if loaded.ok:
            sub.names, sigmas = _validated_load(loaded.meta)
        else:
            assert loaded.failure is not None
            f = loaded.failure
            failure = Failure(kind=f.kind, message=f.message, traceback=f.traceback)
    if failure is not None:
        sub.load_failure = failure
        checks = [not_run(c.id, c.title, a.max_points(c.id), failure, "Your file") for c in CHECKS]
    else:
        checks = _run_checks(submission, a, circle, mnist, sub.names, sigmas, device, workers, hidden, report)
    return GradeResult(
        grader_version=GRADER_VERSION, assignment_id=a.id, assignment_title=a.title, submission=sub,
        started_at=started, finished_at=datetime.now(UTC), seconds=time.monotonic() - t0, device=device,
        seed=a.seed, fast_mode=fast, isolation=IsolationInfo(**isolation.model_dump()), datasets=datasets,
        checks=checks, score=sum(c.score for c in checks), max_score=sum(c.max_score for c in checks),
    )  # fmt: skip


def _run_checks(submission, a, circle, mnist, names, sigmas, device, workers, hidden, report) -> list[CheckResult]:  # noqa: ANN001
    cores = cpu_count()
    workers = workers or min(2, cores)
    done: list[str] = []
    total = [0]
    session = Session(
        submission,
        a,
        circle,
        mnist,
        names=names,
        sigmas=sigmas,
        device=device,
        workers=workers,
        threads=max(1, cores // workers),
        hidden_paths=hidden,
        on_done=lambda name: (done.append(name), report(f"ran {name}", len(done), total[0])),
    )
    try:
        total[0] = len(session.start_all())
        report("running your models", 0, total[0])
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
                result = spec.fn(session, a)
            results.append(result.model_copy(update={"seconds": time.monotonic() - t}))
        return results
    finally:
        session.close()
