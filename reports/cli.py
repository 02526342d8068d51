"""The `grader` command: `grader grade FILE --out DIR` grades and writes result.json, results.json and
report.pdf; `grader report RESULT.json --out REPORT.pdf` renders a stored result again."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from grader.cli import add_calibrate_arguments, add_grade_arguments, cmd_calibrate, cmd_grade, console, shown
from grader.result import GradeResult
from reports.render import render_pdf

EXIT_REPORT_FAILED = 3


def write_report(result: GradeResult, out: Path, out_console: Console) -> int:
    """Render the report; a renderer failure is reported next to the kept result, never instead of it."""
    t0 = time.monotonic()
    try:
        render_pdf(result, out)
    except Exception as e:  # the grade is already on disk: say what failed and keep going
        details = out.parent / "report-error.txt"
        try:
            details.write_text(traceback.format_exc(), encoding="utf-8")
        except OSError:
            details = None
        out_console.print(
            f"[red]error:[/] the report could not be rendered ({shown(f'{type(e).__name__}: {e}', 500)}); the grade "
            "itself is kept" + (f"; details in {shown(details)}." if details else ".")
        )
        return EXIT_REPORT_FAILED
    out_console.print(f"Wrote {shown(out)} in {time.monotonic() - t0:.1f} s.")
    return 0


def cmd_report(args: argparse.Namespace, out_console: Console) -> int:
    try:
        result = GradeResult.model_validate_json(args.result.read_bytes())
    except FileNotFoundError:
        out_console.print(
            f"[red]error:[/] {shown(args.result)} does not exist; pass a result.json written by grader grade."
        )
        return 2
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        out_console.print(f"[red]error:[/] {shown(args.result)} is not a labgrader result ({e.error_count()} problems, "
                          f"first: {shown(first['msg'], 300)} at {shown(where, 300)}).")  # fmt: skip
        return 2
    return write_report(result, args.out, out_console)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grader", description="Grade initialization & regularization lab submissions."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_grade_arguments(sub.add_parser("grade", help="grade one submission file (result files and report.pdf)"))
    r = sub.add_parser("report", help="render the PDF report of a stored result.json again")
    r.add_argument("result", type=Path, help="a result.json written by grader grade")
    r.add_argument("--out", type=Path, required=True, help="the PDF file to write")
    add_calibrate_arguments(
        sub.add_parser("calibrate", help="measure each task's CPU cost on a reference solution (the budgets' base)")
    )
    args = parser.parse_args(argv)
    out_console = console()
    if args.command == "report":
        return cmd_report(args, out_console)
    if args.command == "calibrate":
        return cmd_calibrate(args, out_console)
    graded = cmd_grade(args, out_console)
    if isinstance(graded, int):
        return graded
    return write_report(graded, args.out / "report.pdf", out_console)


if __name__ == "__main__":
    sys.exit(main())
