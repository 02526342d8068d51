"""The class overview of an assignment: score distribution, pass rate per check, the checks that fail most."""

from __future__ import annotations

from dataclasses import dataclass

from service.dashboard.grades import Column, Row
from service.models import Status


@dataclass
class CheckStats:
    column: Column
    graded: int
    passed: int
    mean_points: float

    @property
    def pass_rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class Overview:
    students: int
    submitted: int
    graded: int
    late: int
    mean: float | None
    median: float | None
    max_score: float | None
    written_graded: int  # students with at least one written answer graded by hand
    written_mean: float | None  # their mean manual points
    written_max: float  # what the written answers are worth (0: the assignment has none)
    checks: list[CheckStats]
    distribution_svg: str | None
    pass_rate_svg: str | None

    @property
    def failing_most(self) -> list[CheckStats]:
        return sorted((c for c in self.checks if c.graded), key=lambda c: (c.pass_rate, c.column.title))


def median(values: list[float]) -> float | None:
    """The middle value; for an even count, the mean of the two middle ones."""
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def overview(rows: list[Row], columns: tuple[Column, ...]) -> Overview:
    """Over the students whose counted submission is graded; their totals include the written answers' manual
    points (Row.total)."""
    graded = [r for r in rows if r.counted is not None and r.counted.status == Status.done and r.total is not None]
    totals = sorted(r.total for r in graded)
    written = [r.manual_points for r in rows if r.manual_points is not None]
    checks = []
    for col in columns:
        found = [r.check(col.id) for r in graded if r.check(col.id) is not None]
        checks.append(CheckStats(col, len(found), sum(c.get("status") == "passed" for c in found),
                                 sum(c.get("score", 0.0) for c in found) / len(found) if found else 0.0))  # fmt: skip
    max_score = graded[0].max_score if graded else None
    return Overview(
        students=len(rows), submitted=sum(r.counted is not None for r in rows), graded=len(graded),
        late=sum(r.late for r in rows), mean=sum(totals) / len(totals) if totals else None,
        median=median(totals), max_score=max_score, written_graded=len(written),
        written_mean=sum(written) / len(written) if written else None,
        written_max=rows[0].manual_max if rows else 0.0, checks=checks,
        distribution_svg=_distribution(totals, max_score) if totals else None,
        pass_rate_svg=_pass_rates(checks) if graded else None,
    )  # fmt: skip


def _distribution(totals: list[float], max_score: float | None) -> str:
    import matplotlib.pyplot as plt  # here, not at import: the app starts without matplotlib (drawn on demand)
    from matplotlib.ticker import MaxNLocator

    from reports.plots import svg

    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    top = max_score or max(totals) or 1.0
    ax.hist(totals, bins=min(20, max(5, len(totals) // 2)), range=(0, top), color="#3b6ea5", edgecolor="white")
    ax.set_xlabel(f"score (out of {top:g})")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, top)
    fig.tight_layout()
    return svg(fig)


def _pass_rates(checks: list[CheckStats]) -> str:
    import matplotlib.pyplot as plt

    from reports.plots import svg

    fig, ax = plt.subplots(figsize=(5.2, 0.5 * len(checks) + 0.7))
    names = [c.column.title for c in checks][::-1]
    rates = [100 * c.pass_rate for c in checks][::-1]
    # each check's name above its bar, not as a tick label: long names as tick labels squeezed the bars to a sliver
    bars = ax.barh(range(len(rates)), rates, height=0.45, color=["#b5443b" if r < 50 else "#3b6ea5" for r in rates])
    ax.bar_label(bars, labels=[f"{r:.0f}%" for r in rates], padding=3, fontsize=8)
    for y, name in enumerate(names):
        ax.text(1, y + 0.28, name, fontsize=8, va="bottom", ha="left")
    ax.set_yticks([])
    ax.set_ylim(-0.5, len(rates) - 0.1)
    ax.set_xlim(0, 110)
    ax.set_xlabel("students who passed the check (%)")
    fig.tight_layout()
    return svg(fig)
