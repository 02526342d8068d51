"""GradeResult -> HTML (Jinja2, autoescaped) -> PDF (WeasyPrint), fetching nothing but inline data."""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from grader.result import GradeResult
from reports.facts import ABOUT, facts
from reports.plots import all_figures

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "report"
STATUS_LABEL = {"passed": "passed", "failed": "failed", "error": "error", "skipped": "skipped"}


def url_fetcher() -> URLFetcher:
    """Only data: URLs (the inline figures) are fetched: no file system, no network, whatever a text says."""
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data_uri"] = lambda svg: "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    env.filters["points"] = lambda v: f"{v:g}"
    return env


def render_html(result: GradeResult, processes: int = 2) -> str:
    """The report as one self-contained HTML document; `processes` draw the figures (see all_figures)."""
    drawn = all_figures(result.checks, processes=processes)
    sections = [
        {"check": c, "about": ABOUT.get(c.id, ""), "facts": facts(c), "figures": f}
        for c, f in zip(result.checks, drawn, strict=True)
    ]
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return (
        _environment()
        .get_template("report.html.j2")
        .render(result=result, sections=sections, css=css, status_label=STATUS_LABEL)
    )


def render_pdf(result: GradeResult, out: Path, processes: int = 2) -> Path:
    """Write the PDF report of `result` to `out` (fonts embedded, text selectable) and return its path."""
    html = render_html(result, processes)
    out.parent.mkdir(parents=True, exist_ok=True)
    HTML(string=html, url_fetcher=url_fetcher(), base_url=None).write_pdf(out)
    return out
