"""Benchmarks of labgrader: `python bench/run.py [NAME...] [--quick]`.

Each benchmark measures a baseline and our way in the same run and prints `name  baseline  ours  ratio`; the
table (with each benchmark's breakdown, and a plot) goes to docs/benchmarks.md. --quick uses small budgets: a
smoke run whose numbers are not the record (the table says so)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import api_import, compute, contain, dashboard, grading, portal, report, service  # noqa: E402
from bench.common import ROOT, Row  # noqa: E402
from bench.plot import GOALS as RATIO_GOALS  # noqa: E402
from bench.plot import plot  # noqa: E402
from bench.service import BenchSetupError  # noqa: E402

BENCHMARKS: dict[str, Callable[[bool], Row]] = {
    "sweep": compute.bench_sweep,
    "grade": grading.bench_grade,
    "report": report.bench_report,
    "mnist": grading.bench_mnist,
    "sandbox": grading.bench_sandbox,
    "api": service.bench_api,
    "workers": service.bench_workers,
    "scaling": service.bench_scaling,
    "contain": contain.bench_contain,
    "dashboard": dashboard.bench_dashboard,
    "portal": portal.bench_portal,
    "api_import": api_import.bench_api_import,
}


def _number(value: float, unit: str) -> str:
    if unit == "s" or abs(value) < 10:
        return f"{value:.2f}"
    return f"{value:.0f}"


# The goals: (description, met?) for each benchmark that has one.
GOALS: dict[str, tuple[str, Callable[[Row], bool]]] = {
    "sweep": ("at least 10x the loop", lambda r: r.ratio >= RATIO_GOALS["sweep"]),
    "grade": ("at most 60 s of wall time", lambda r: r.ours <= 60),
    "report": ("at most 3 s", lambda r: r.ours <= 3),
    "api": ("p99 at most 50 ms while workers are busy", lambda r: r.ours <= 50),
    "workers": ("2 workers at least 1.8x the throughput of 1", lambda r: r.ratio >= RATIO_GOALS["workers"]),
    "scaling": ("the same, each worker with a CPU of its own", lambda r: r.ratio >= RATIO_GOALS["scaling"]),
    "contain": (
        "health p99 at most 100 ms while bombs are graded (and they stay in their CPU share)",
        lambda r: r.ours <= 100,
    ),
    "dashboard": (
        f"grade table of 500 students p99 under {dashboard.GOAL_P99_MS:.0f} ms",
        lambda r: r.ours < dashboard.GOAL_P99_MS,
    ),
    "portal": (
        f"a student's slowest portal page p99 under {portal.GOAL_P99_MS:.0f} ms",
        lambda r: r.ours < portal.GOAL_P99_MS,
    ),
    "api_import": ("the API imports neither torch nor matplotlib", lambda r: "imports neither" in r.what),
}


def write_markdown(rows: list[Row], path: Path, quick: bool) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `python bench/run.py{' --quick' if quick else ''}` ({platform.machine()}, {os.cpu_count()} "
        f"CPUs, torch {torch.__version__}){': QUICK SMOKE RUN, NOT THE RECORD' if quick else ''}; each row on the "
        "day it shows. Baseline and ours are measured in the same run; ratio = baseline / ours (above 1: ours is "
        "faster). Where the numbers come from and which goals cannot be met here: [performance.md](performance.md).",
        "",
        "| name | baseline | ours | unit | ratio | measured | what |",
        "|---|---:|---:|---|---:|---|---|",
        *(
            f"| {r.name} | {_number(r.baseline, r.unit)} | {_number(r.ours, r.unit)} | {r.unit} | {r.ratio:.2f}x "
            f"| {r.measured} | {r.what} |"
            for r in rows
        ),
        "",
    ]
    goals = [r for r in rows if r.name in GOALS]
    if goals:
        lines += [
            "| goal | measured | met |",
            "|---|---:|---|",
            *(
                f"| {r.name}: {GOALS[r.name][0]} | {_number(r.ours, r.unit)} {r.unit} ({r.ratio:.2f}x) "
                f"| {'yes' if GOALS[r.name][1](r) else 'no: see docs/performance.md'} |"
                for r in goals
            ),
            "",
        ]
    picture = path.with_suffix(".png")
    plot(rows, grading.GRADE_TIMELINE, picture, {r.name: GOALS[r.name][1](r) for r in rows if r.name in GOALS})
    lines += [f"![ratios and the grade's timeline]({picture.name})", ""]
    for r in rows:
        if r.details:
            lines += [f"## {r.name}", "", *r.details, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small budgets: a smoke run, not a record")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    merge = "keep the other rows of the last run (from OUT's .json) and replace only these"
    parser.add_argument("--merge", action="store_true", help=merge)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    out = args.out.resolve()
    rows = []
    print(f"{'name':<14}{'baseline':>11}{'ours':>11}{'ratio':>9}")
    with tempfile.TemporaryDirectory(prefix="labgrader-bench-") as work:
        os.chdir(work)  # lab tasks run in-process here write their progress file into the working folder
        for name in args.names or list(BENCHMARKS):
            try:
                row = BENCHMARKS[name](args.quick)
            except BenchSetupError as e:
                print(f"bench/run.py: {name} cannot run: {e}", file=sys.stderr)
                return 2
            row.measured = f"{datetime.now(UTC):%Y-%m-%d}"
            rows.append(row)
            unit = row.unit.split()[0]
            print(
                f"{row.name:<14}{_number(row.baseline, row.unit) + unit:>11}"
                f"{_number(row.ours, row.unit) + unit:>11}{row.ratio:>8.2f}x  {row.what}",
                flush=True,
            )
        os.chdir(ROOT)
    store = out.with_suffix(".json")
    if args.merge and store.exists():
        kept = json.loads(store.read_text(encoding="utf-8"))
        measured = {r.name for r in rows}
        rows += [Row(**r) for r in kept["rows"] if r["name"] not in measured]
        rows.sort(key=lambda r: list(BENCHMARKS).index(r.name) if r.name in BENCHMARKS else len(BENCHMARKS))
        if not grading.GRADE_TIMELINE:
            grading.GRADE_TIMELINE[:] = kept.get("grade_timeline", [])
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps({"rows": [asdict(r) for r in rows], "grade_timeline": grading.GRADE_TIMELINE},
                                indent=1), encoding="utf-8")  # fmt: skip
    write_markdown(rows, out, args.quick)
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
