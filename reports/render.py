"""GradeResult -> HTML (Jinja2, autoescaped) -> PDF (WeasyPrint), fetching nothing but inline data."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from grader.result import GradeResult
from grader.text import MESSAGE_LIMIT, clean, clean_check, clean_failure
from reports.plots import all_figures

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "report"
STATUS_LABEL = {"passed": "passed", "failed": "failed", "error": "error", "skipped": "skipped"}
log = logging.getLogger(__name__)
#: Control characters other than newline and tab: nothing a typed answer needs, and nothing to lay out.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
#: A run of characters without a break opportunity, longer than any word: a name or a token from a submission.
LONG_RUN = re.compile(r"\S{80}(?=\S)")
#: What each sandboxed run of the grader did, in words (a bundle's name joins its parts' names with "+").
RUN_WORDS = {
    "build": "loading your file and building your models",
    "mnist_plain": "training the MNIST network without dropout",
    "mnist_dropout": "training the MNIST network with dropout",
    "sweep": "the sigma sweep",
    "recommended": "your recommended init",
    "deep": "the deep network's statistics",
    "sanity": "the initialization sanity looks",
    "fold": "BatchNorm folding",
    "tanh": "the tanh network",
}


@dataclass(frozen=True)
class WrittenAnswer:
    """A written question of the assignment and the student's answer, as the report prints it (graded by hand)."""

    title: str
    prompt: str
    text: str | None  # the submitted answer; None: not answered
    points: float  # what the question is worth
    submitted_at: datetime | None = None


def url_fetcher() -> URLFetcher:
    """Only data: URLs (the inline figures) are fetched: no file system, no network, whatever a text says."""
    return URLFetcher(allowed_protocols={"data"}, allow_redirects=False)


def breakable(value: object) -> object:
    """Every text the template prints, with an invisible break opportunity (U+200B) after each 80 characters of a
    run without one: a long name wraps in its table cell instead of running off the page, and WeasyPrint, whose
    overflow-wrap: anywhere takes seconds per thousand characters, lays it out as fast as ordinary words."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return LONG_RUN.sub(lambda m: m.group() + "\u200b", value)
    return value


def run_words(name: str) -> str:
    """A sandboxed run's name as the report prints it: "sweep+sanity+fold" -> "the sigma sweep, the
    initialization sanity looks, BatchNorm folding"; a name not listed keeps its words, without underscores."""
    return ", ".join(RUN_WORDS.get(part, part.replace("_", " ")) for part in name.split("+"))


def summary_verdict(message: str, limit: int = 110) -> str:
    """A check's verdict as the first page's summary gives it: the first sentence, cut at a word after `limit`
    characters (a long one, with numbers, wrapped over eight lines and pushed the summary onto a second page)."""
    first = message.split(". ")[0].rstrip(".")
    if len(first) <= limit:
        return first + "."
    return first[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        finalize=breakable,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data_uri"] = lambda svg: Markup("data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode())
    env.filters["points"] = lambda v: f"{v:g}"
    env.filters["run_words"] = run_words
    env.filters["summary_verdict"] = summary_verdict
    return env


def render_html(result: GradeResult, processes: int = 2, answers: Sequence[WrittenAnswer] = ()) -> str:
    """The report as one self-contained HTML document; `processes` draw the figures (see all_figures). Its texts
    are cleaned again (grader.text), so that a stored result of any origin renders within the same limits.
    `answers`: the written answers, printed at the end (as submitted by the time of grading)."""
    result = cleaned(result)
    drawn = all_figures(result.checks, processes=processes)
    load_failure = result.submission.load_failure
    sections = [
        # not_loaded: the check failed only because the file could not be loaded (said once, on the first page)
        {"check": c, "about": c.about, "facts": c.facts, "figures": f,
         "not_loaded": load_failure is not None and c.failure == load_failure}
        for c, f in zip(result.checks, drawn, strict=True)
    ]  # fmt: skip
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            result=result,
            sections=sections,
            css=css,
            status_label=STATUS_LABEL,
            titles={c.id: c.title for c in result.checks},
            answers=[a if a.text is None else replace(a, text=CONTROL.sub("", a.text)) for a in answers],
        )  # fmt: skip
    )


def cleaned(result: GradeResult) -> GradeResult:
    sub = result.submission
    submission = sub.model_copy(
        update={
            "filename": clean(sub.filename, MESSAGE_LIMIT),
            "student": None if sub.student is None else clean(sub.student, MESSAGE_LIMIT),
            "load_failure": clean_failure(sub.load_failure),
        }
    )
    return result.model_copy(update={"submission": submission, "checks": [clean_check(c) for c in result.checks]})


def render_pdf(result: GradeResult, out: Path, processes: int = 2, answers: Sequence[WrittenAnswer] = (),
               html_out: Path | None = None) -> Path:  # fmt: skip
    """Write the PDF report of `result` to `out` (fonts embedded, text selectable) and return its path; with
    `html_out`, the same report as one self-contained HTML page there too (the portal shows it in the page)."""
    html = render_html(result, processes, answers)
    out.parent.mkdir(parents=True, exist_ok=True)
    HTML(string=html, url_fetcher=url_fetcher(), base_url=None).write_pdf(out)
    if html_out is not None:
        html_out.write_text(html, encoding="utf-8")
    return out
