"""The grading half of the `grader` command (reports.cli adds the PDF): arguments, progress bar, summary table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader.assignment import AssignmentError, load_assignment
from grader.device import DEVICE_CHOICES
from grader.gradescope import to_gradescope
from grader.result import GradeResult
from grader.text import MESSAGE_LIMIT, clean

STATUS_STYLE = {"passed": "green", "failed": "red", "error": "red", "skipped": "yellow"}


def write_result(result: GradeResult, out: Path) -> None:
    """DIR/result.json (the project's schema) and DIR/results.json (Gradescope's format)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(result.model_dump_json(indent=1), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(to_gradescope(result), indent=1), encoding="utf-8")


def shown(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """Text for the terminal: cleaned (grader.text), and with rich markup in it escaped (printed as it is)."""
    return escape(clean(text, limit))


def summary(result: GradeResult) -> Table:
    title = f"{shown(result.submission.filename)}: {result.score:g} / {result.max_score:g}"
    if result.fast_mode:
        title += "  [FAST MODE: not a real grade]"
    table = Table(title=title, show_lines=False)
    for col in ("check", "points", "status", "verdict"):
        table.add_column(col, overflow="fold")
    for c in result.checks:
        first = clean(c.message, MESSAGE_LIMIT).split(". ")[0].rstrip(".") + "."
        verdict = first if len(first) <= 110 else first[:107] + "..."
        style = STATUS_STYLE.get(c.status, "red")
        table.add_row(shown(c.title), f"{c.score:g}/{c.max_score:g}", f"[{style}]{shown(c.status)}[/]", escape(verdict))
    return table


def cmd_grade(args: argparse.Namespace, console: Console) -> GradeResult | int:
    """Grade, write DIR/result.json and DIR/results.json, print the summary; an exit code when the grader
    could not run."""
    from grader.grading import GradingError, grade  # torch and the checks: only a grading needs them

    if not args.file.is_file():
        console.print(f"[red]error:[/] {shown(args.file)} is not a file; pass the student's .py file.")
        return 2
    try:
        assignment = load_assignment(args.assignment)
    except AssignmentError as e:
        console.print(f"[red]error:[/] {shown(e)}")
        return 2
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.quiet,
    ) as bar:
        task = bar.add_task("grading", total=None)

        def on_progress(what: str, step: int, total: int) -> None:
            bar.update(task, description=what, completed=step, total=total)

        try:
            result = grade(
                args.file,
                assignment,
                device=args.device,
                fast=args.fast,
                data_dir=args.data_dir,
                progress=on_progress,
            )
        except (GradingError, ValueError) as e:
            console.print(f"[red]error:[/] the grader could not run: {shown(e)}")
            return 2
    if args.student:
        result.submission.student = args.student
    write_result(result, args.out)
    console.print(summary(result))
    console.print(
        f"Wrote {shown(args.out / 'result.json')} and {shown(args.out / 'results.json')} in {result.seconds:.0f} s "
        f"({shown(result.device)}, isolation: {shown(result.isolation.method)})."
    )
    return result


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    """Grade the reference solution with one CPU thread per task and print each task's CPU cost as the
    [limits.reference_cpu_seconds] table of an assignment file (the budgets are multiples of it)."""
    from grader.grading import GradingError, grade

    try:
        assignment = load_assignment(args.assignment)
        measuring = assignment.model_copy(  # budgets that no reference solution reaches while it is measured
            update={"limits": assignment.limits.model_copy(update={"min_cpu_seconds": 3600.0, "bundle_below": 0.0})}
        )
        result = grade(args.file, measuring, device=args.device, data_dir=args.data_dir, workers=2, cpus=2)
    except (AssignmentError, GradingError, ValueError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return 2
    if result.score < result.max_score:
        console.print(
            f"[red]error:[/] {escape(args.file.name)} scored {result.score:g}/{result.max_score:g}: calibrate with a "
            "solution that gets full marks, or its costs are not the reference's."
        )
        return 2
    costs = {r.name: r.cpu_seconds for r in result.runs}
    if any(cost is None for cost in costs.values()):
        console.print("[red]error:[/] this host counts no CPU time per task (no cgroup); calibrate on a grading host.")
        return 2
    calibrated = assignment.limits.model_copy(update={"reference_cpu_seconds": costs})
    print(f"[limits.reference_cpu_seconds]  # {args.file.name}, one thread per task, {result.finished_at:%Y-%m-%d}")
    for name, cost in costs.items():
        print(f"{name} = {cost:.1f}  # budget {calibrated.cpu_budget(name):.0f} s of CPU at one thread")
    return 0


def add_calibrate_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("file", type=Path, help="the reference solution (it must get full marks)")
    g.add_argument("--assignment", type=Path, default=None, help="assignment TOML (default: the built-in lab)")
    g.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where models run (default: auto)")
    g.add_argument("--data-dir", type=Path, default=None, help="folder with MNIST IDX files (as for grade)")


def add_grade_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("file", type=Path, help="the student's Python file")
    g.add_argument("--out", type=Path, required=True, help="folder for result.json and results.json")
    g.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where models run (default: auto)")
    g.add_argument("--assignment", type=Path, default=None, help="assignment TOML (default: the built-in lab)")
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with MNIST IDX files in mnist/ (default: $LABGRADER_DATA_DIR, then Fashion-MNIST)",
    )
    g.add_argument("--fast", action="store_true", help="small budgets for development; the result says so")
    g.add_argument("--student", default=None, help="the student's name, shown in the result and report")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 140)
