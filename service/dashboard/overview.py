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
    checks: list[CheckStats]
    distribution_svg: str | None
    pass_rate_svg: str | None

    @property
    def failing_most(self) -> list[CheckStats]:
        return sorted((c for c in self.checks if c.graded), key=lambda c: (c.pass_rate, c.column.title))


def overview(rows: list[Row], columns: tuple[Column, ...]) -> Overview:
    graded = [r for r in rows if r.counted is not None and r.counted.status == Status.done and r.total is not None]
    totals = sorted(r.total for r in graded)
    checks = []
    for col in columns:
        found = [r.check(col.id) for r in graded if r.check(col.id) is not None]
        checks.append(CheckStats(col, len(found), sum(c.get("status") == "passed" for c in found),
                                 sum(c.get("score", 0.0) for c in found) / len(found) if found else 0.0))  # fmt: skip
    max_score = graded[0].counted.max_score if graded else None
    return Overview(
        students=len(rows), submitted=sum(r.counted is not None for r in rows), graded=len(graded),
        late=sum(r.late for r in rows), mean=sum(totals) / len(totals) if totals else None,
        median=totals[len(totals) // 2] if totals else None, max_score=max_score, checks=checks,
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

    fig, ax = plt.subplots(figsize=(5.2, 0.45 * len(checks) + 0.8))
    names = [c.column.title for c in checks][::-1]
    rates = [100 * c.pass_rate for c in checks][::-1]
    bars = ax.barh(names, rates, color=["#b5443b" if r < 50 else "#3b6ea5" for r in rates])
    ax.bar_label(bars, labels=[f"{r:.0f}%" for r in rates], padding=3, fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("students who passed the check (%)")
    fig.tight_layout()
    return svg(fig)
