"""The result of grading one submission: one versioned schema that the CLI writes, the worker stores, the report
renders and the dashboard reads. Fields are only ever added, never repurposed (bump SCHEMA_VERSION's minor)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

SCHEMA_VERSION = "1.1"  # 1.1: sections; each check's about, facts and figures

Status = Literal["passed", "failed", "error", "skipped"]
Number = float | int | bool | str | None


def rounded(values: Any, digits: int) -> Any:
    """Round floats (nested in lists) to `digits` significant digits so result files stay small; NaN/inf -> None."""
    if isinstance(values, list | tuple):
        return [rounded(v, digits) for v in values]
    if isinstance(values, float):
        if not math.isfinite(values):
            return None
        return float(f"{values:.{digits}g}")
    return values


class Series(BaseModel):
    """Data for one plot element: a curve (x, y), or a 2-D array in `values` (histograms, decision boundaries)."""

    name: str
    x: list[float | None] | None = None
    y: list[float | None] | None = None
    values: list[list[float | None]] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("x", "y", "values", mode="before")
    @classmethod
    def _round(cls, v: Any) -> Any:
        return rounded(v, 5)


class Item(BaseModel):
    """One scored (or, with max_points 0, reported) part of a check."""

    id: str
    title: str
    passed: bool
    points: float
    max_points: float
    detail: str


class Failure(BaseModel):
    """Why the student's code could not be run for a check (a copy of the sandbox's verdict)."""

    kind: str
    message: str
    traceback: str | None = None


class Fact(BaseModel):
    """One row of a check's "Expected and measured" table in the report."""

    label: str
    expected: str
    measured: str

    def __init__(self, label: str, expected: str, measured: str) -> None:
        super().__init__(label=label, expected=expected, measured=measured)


class FigureRef(BaseModel):
    """A figure the report draws from the check's own data: a drawing function of reports.plots, by name."""

    caption: str
    draw: str
    options: dict[str, str] = Field(default_factory=dict)


class CheckResult(BaseModel):
    id: str
    title: str
    status: Status
    score: float
    max_score: float
    message: str  # one paragraph a student can act on
    hint: str | None = None  # what to change in the code, for a failure
    items: list[Item] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    series: list[Series] = Field(default_factory=list)
    failure: Failure | None = None
    seconds: float = 0.0  # time spent in this check, waiting for its sandbox runs included
    about: str = ""  # why the check exists (the report's first paragraph of its section)
    facts: list[Fact] = Field(default_factory=list)  # expected against measured, from `metrics`
    figures: list[FigureRef] = Field(default_factory=list)  # what the report draws from `series` and `metrics`


class SectionScore(BaseModel):
    """One part of the lab in the grade (the assignment's [[sections]]): the points of its items together."""

    id: str
    title: str
    score: float
    max_score: float
    checks: list[str] = Field(default_factory=list)  # the checks with items in it, in report order


class Dataset(BaseModel):
    name: str
    source: str
    n_train: int
    n_val: int


class IsolationInfo(BaseModel):
    method: str
    network_isolated: bool
    filesystem: str
    limits: dict[str, Any]
    notes: list[str] = Field(default_factory=list)
    cgroup: list[str] = Field(default_factory=list)  # cgroup features in force: cpu, cpuacct, memory, pids
    sandbox_uid: int | None = None  # unprivileged host uid of the student's code (None: the grader's own)
    seccomp: bool = False


class RunTiming(BaseModel):
    """One sandboxed task of the grading run and its wall time (child start to exit)."""

    name: str
    task: str
    seconds: float
    ok: bool
    started_s: float | None = None  # when it started, in seconds after the sandbox tasks were queued
    cpu_seconds: float | None = None  # CPU time of all its processes (its cgroup; None where none was in force)
    memory_peak_mb: float | None = None  # the most memory its processes and in-memory folders held at once


class Submission(BaseModel):
    filename: str
    student: str | None = None  # set by whoever knows (the service's roster, the CLI's --student)
    sha256: str
    size_bytes: int
    names: dict[str, str] = Field(default_factory=dict)  # contract name -> "function" | "dict" | "missing" | ...
    load_failure: Failure | None = None


class GradeResult(BaseModel):
    schema_version: str = SCHEMA_VERSION
    grader_version: str
    assignment_id: str
    assignment_title: str
    submission: Submission
    started_at: datetime
    finished_at: datetime
    seconds: float
    device: str
    seed: int
    fast_mode: bool  # True: smaller budgets for development; never a real grade
    isolation: IsolationInfo
    datasets: list[Dataset]
    checks: list[CheckResult]
    runs: list[RunTiming] = Field(default_factory=list)
    score: float
    max_score: float
    sections: list[SectionScore] = Field(default_factory=list)  # empty when the assignment declares none

    def check(self, check_id: str) -> CheckResult:
        return next(c for c in self.checks if c.id == check_id)
