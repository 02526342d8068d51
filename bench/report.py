"""Benchmark of one PDF report: the reference solution's result rendered with every figure drawn in this process
(the baseline) against the figures shared with a forked copy (ours), and where the time goes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pypdf import PdfReader
from weasyprint import HTML

from bench import grading
from bench.common import REFERENCE, Row
from grader.grading import grade
from reports.plots import all_figures
from reports.render import render_html, render_pdf, url_fetcher


def bench_report(quick: bool) -> Row:
    """Reuses the grade benchmark's result when it ran first; grades the reference solution otherwise."""
    result = grading.LAST_RESULT[0] if grading.LAST_RESULT else grade(REFERENCE, fast=quick)
    with tempfile.TemporaryDirectory(prefix="labgrader-bench-report-") as tmp:
        render_pdf(result, Path(tmp) / "warm.pdf", processes=1)  # imports, fonts and caches, out of both numbers
        t0 = time.perf_counter()
        render_pdf(result, Path(tmp) / "serial.pdf", processes=1)
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = render_pdf(result, Path(tmp) / "report.pdf")
        ours = time.perf_counter() - t0
        pages = len(PdfReader(out).pages)
        assert pages == len(PdfReader(Path(tmp) / "serial.pdf").pages)
        t0 = time.perf_counter()
        drawn = all_figures(result.checks)
        figures = time.perf_counter() - t0
        t0 = time.perf_counter()
        html = render_html(result)
        layout_html = time.perf_counter() - t0 - figures
        t0 = time.perf_counter()
        document = HTML(string=html, url_fetcher=url_fetcher(), base_url=None).render()
        layout = time.perf_counter() - t0
        t0 = time.perf_counter()
        document.write_pdf(Path(tmp) / "again.pdf")
        write = time.perf_counter() - t0
    n_figures = sum(len(f) for f in drawn)
    svg_kb = sum(len(svg) for f in drawn for _, svg in f) / 1024
    details = [
        f"{pages} pages, {n_figures} figures ({svg_kb:.0f} KiB of SVG). Where the time of one report goes "
        "(measured separately, so the parts add up only roughly):",
        "",
        "| part | seconds |",
        "|---|---:|",
        f"| figures (matplotlib, two processes) | {figures:.2f} |",
        f"| HTML (Jinja2 template) | {max(layout_html, 0):.2f} |",
        f"| layout (WeasyPrint: CSS, SVG parsing, pages) | {layout:.2f} |",
        f"| PDF writing (WeasyPrint: painting, fonts subset and embedded) | {write:.2f} |",
    ]
    what = f"reference report, {pages} pages; baseline draws the {n_figures} figures in one process"
    return Row("report", baseline, ours, what, details=details)
