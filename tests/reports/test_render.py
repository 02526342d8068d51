"""PDF reports rendered for real with WeasyPrint and read back with pypdf."""

import json

import pytest
from conftest import MAX_POINTS, SUBMISSIONS, graded_fast, pdf_text
from pypdf import PdfReader

from grader import grade, load_assignment
from reports.cli import main
from reports.render import render_html, render_pdf, url_fetcher


@pytest.fixture(scope="module")
def reference_pdf(reference_fast, tmp_path_factory):
    return render_pdf(reference_fast, tmp_path_factory.mktemp("report") / "report.pdf")


def test_reference_report_has_every_check_and_the_score(reference_fast, reference_pdf):
    text, pages = pdf_text(reference_pdf)
    assert f"{MAX_POINTS:g} / {MAX_POINTS:g} points" in text and "FAST MODE" in text
    for check in reference_fast.checks:
        assert check.title in text
    assert "Expected and measured" in text and "What to change" not in text
    assert f"page {pages} of {pages}" in text
    assert "training step" in text, "figure text stays selectable"


def test_fonts_are_embedded(reference_pdf):
    reader = PdfReader(reference_pdf)
    fonts = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            descriptor = font.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"]
            fonts.add(any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")))
    assert fonts == {True}


def test_summary_links_to_sections(reference_fast):
    html = render_html(reference_fast)
    for check in reference_fast.checks:
        assert f'href="#{check.id}"' in html and f'id="{check.id}"' in html


@pytest.mark.slow  # renders the reference report a second time (~15 s)
def test_same_result_renders_the_same_content(reference_fast, reference_pdf, tmp_path):
    assert render_html(reference_fast) == render_html(reference_fast)
    again = render_pdf(reference_fast, tmp_path / "again.pdf")
    assert pdf_text(again) == pdf_text(reference_pdf)


@pytest.mark.slow  # a grading of its own (10-15 s)
def test_failed_check_shows_verdict_and_hint(tmp_path):
    from bugs import BUGS

    result = graded_fast(BUGS["lecun_instead_of_he"].write(tmp_path / "lecun.py"))
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    lost = load_assignment().points["activation_stats"]["kaiming"]
    assert f"{MAX_POINTS - lost:g} / {MAX_POINTS:g} points" in text
    assert "What to change" in text and "LeCun" in text
    # the points lost count in Part 2 only; the other parts of the lab are whole
    parts = {s.id: (s.score, s.max_score) for s in result.sections}
    assert parts["part2"] == (30 - lost, 30) and parts["part1"] == (30, 30) and parts["part3"] == (40, 40)
    assert f"Part 2: initialization of a deep network {30 - lost:g} / 30" in text.replace("\n", " ")


def test_unloadable_file_still_gets_a_report_that_says_why(tmp_path):
    """The reason is given once, on the first page; each check says it did not run, in a few lines, and the
    report is a few pages (it was a page per check, each with the same message and traceback)."""
    result = grade(SUBMISSIONS / "hostile" / "syntax_error.py", load_assignment(), fast=True)
    text, pages = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    flat = " ".join(text.split())
    assert "could not be loaded" in text and f"0 / {MAX_POINTS:g} points" in text
    reason = " ".join(result.submission.load_failure.message.split(".")[0].split())
    assert flat.count(reason) == 1
    assert flat.count("Not run: your file could not be loaded") == len(result.checks)
    assert flat.count("Not run: file not loaded.") == len(result.checks)  # the summary's verdicts
    assert "What went wrong" not in text and pages <= 5
    first = " ".join(PdfReader(tmp_path / "report.pdf").pages[0].extract_text().split())
    assert all(c.title in first for c in result.checks), "the summary fits the first page"
    assert [(s.score, s.max_score) for s in result.sections] == [(0, s.points) for s in load_assignment().sections]


def test_student_text_cannot_inject_html_or_fetch_files(reference_fast, tmp_path):
    hostile = '<img src="file:///etc/passwd"><style>html{display:none}</style><a href="http://x">x</a>'
    result = reference_fast.model_copy(deep=True)
    result.submission.student = hostile
    result.checks[0].message = hostile
    html = render_html(result)
    assert hostile not in html and "&lt;img src=" in html
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert '<img src="file:///etc/passwd">' in text.replace("\n", "")
    fetcher = url_fetcher()
    for url in ("file:///etc/passwd", "http://127.0.0.1:6379/"):
        with pytest.raises(ValueError, match="disallowed protocol"):
            fetcher.fetch(url)


def test_report_command_renders_a_stored_result_and_explains_bad_input(reference_fast, tmp_path, capsys):
    stored = tmp_path / "result.json"
    stored.write_text(reference_fast.model_dump_json())
    assert main(["report", str(stored), "--out", str(tmp_path / "again.pdf")]) == 0
    assert f"{MAX_POINTS:g} / {MAX_POINTS:g} points" in pdf_text(tmp_path / "again.pdf")[0]
    (tmp_path / "bad.json").write_text(json.dumps({"score": 1}))
    assert main(["report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.pdf")]) == 2
    assert "is not a labgrader result" in capsys.readouterr().out


def test_renderer_failure_keeps_the_grade(reference_fast, tmp_path, capsys):
    stored = tmp_path / "result.json"
    stored.write_text(reference_fast.model_dump_json())
    (tmp_path / "report.pdf").mkdir()  # the PDF cannot be written where it should go
    assert main(["report", str(stored), "--out", str(tmp_path / "report.pdf")]) == 3
    out = capsys.readouterr().out
    assert "could not be rendered" in out and "the grade itself is kept" in out
    assert stored.exists() and "IsADirectoryError" in (tmp_path / "report-error.txt").read_text()


def test_series_without_a_positive_value_get_a_linear_axis_not_a_failed_report(reference_fast, tmp_path):
    """A model whose losses are all NaN (stored as null) or zero leaves nothing to draw on a log axis."""
    result = reference_fast.model_copy(deep=True)
    for check in result.checks:
        for series in check.series:
            if series.y:
                series.y = [None if i % 2 else 0.0 for i in range(len(series.y))]
    text, _ = pdf_text(render_pdf(result, tmp_path / "flat.pdf"))
    assert "Part 1: sigma sweep" in text


def test_written_answers_are_printed_escaped_and_missing_ones_said(reference_fast, tmp_path):
    from datetime import UTC, datetime

    from reports.render import WrittenAnswer

    long = "The small sigma starts slowly and the big one never recovers. " * 120  # several pages' worth
    answers = [
        WrittenAnswer("Part 1: the three sigmas", "Which sigmas?", long, 4, datetime(2026, 12, 5, 10, 0, tzinfo=UTC)),
        WrittenAnswer("Part 3: an ensemble", "How does K matter?", "<script>alert(1)</script>\x00 K=100", 3),
        WrittenAnswer("Part 2: statistics", "How do they change?", None, 4),
    ]
    html = render_html(reference_fast, answers=answers)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; K=100" in html
    text, _ = pdf_text(render_pdf(reference_fast, tmp_path / "answers.pdf", answers=answers,
                                  html_out=tmp_path / "report.html"))  # fmt: skip
    assert "Written answers (graded by your instructor)" in text and "Not answered." in text
    assert "Submitted 2026-12-05 10:00 UTC" in text and "Part 3: an ensemble" in text and "How does K matter?" in text
    # the long answer is whole, across pages: one word of it, as a phrase can have a page's running header and
    # footer, or a figure's text, between its words in the text read back
    assert text.count("recovers") == 120
    assert (tmp_path / "report.html").read_text() == html
    assert "Written answers" not in render_html(reference_fast)  # an assignment without questions: no section


def test_a_check_worth_nothing_reads_as_reported_not_scored(reference_fast):
    html = render_html(reference_fast)
    reported = [c for c in reference_fast.checks if not c.max_score]
    assert reported, "the lab has a reported check (training diagnostics)"
    assert html.count('status-reported">reported, not scored') == 2 * len(reported)  # summary and heading
    assert "0 / 0" not in html


MM = 72 / 25.4


def page_fill(page) -> float:
    """How far down the page's text area (between the header and the footer) its text reaches, 0 to 1: the
    lowest line of HTML text (a figure's caption is under its figure; the text inside the figures is left out,
    pypdf does not follow the SVGs' own transforms)."""
    height = float(page.mediabox.height)
    top, bottom = height - 20 * MM, 18 * MM  # the report's @page margins
    lowest = []

    def visit(text, cm, tm, font, size):
        if text.strip() and abs(cm[0] - 0.75) < 1e-6 and abs(cm[3] + 0.75) < 1e-6:  # WeasyPrint's page matrix
            y = cm[5] + cm[3] * tm[5]
            if bottom < y < top:
                lowest.append(y)

    page.extract_text(visitor_text=visit)
    return (top - min(lowest)) / (top - bottom) if lowest else 0.0


def test_no_page_but_the_last_is_mostly_empty(reference_pdf):
    """Checks follow one another; a figure (or a check's verdict and first figure) that does not fit goes to the
    next page whole. A page per check, figures slipping past their tables, left pages 28-38% full."""
    pages = PdfReader(reference_pdf).pages
    fills = [round(page_fill(p), 2) for p in pages]
    assert min(fills[:-1]) >= 0.45, fills
    assert len(pages) <= 21


def test_each_verdict_is_on_the_page_of_its_first_figure(reference_fast, reference_pdf):
    """The summary fits the first page; a check's verdict and its first figure are one block on one page, on the
    page of the check's heading or the next (a figure used to slip to a page of its own after the tables)."""
    from reports.plots import all_figures

    pages = [" ".join(p.extract_text().split()) for p in PdfReader(reference_pdf).pages]
    assert all(c.title in pages[0] for c in reference_fast.checks), "the summary spills over"
    figures = dict(zip((c.id for c in reference_fast.checks), all_figures(reference_fast.checks), strict=True))
    checked = 0
    for check in reference_fast.checks:
        heading = next(i for i, p in enumerate(pages) if i > 0 and f"{check.title} " in p)
        verdict = "Verdict. " + " ".join(check.message.split()[:6])
        page = next(i for i, p in enumerate(pages) if i >= heading and verdict in p)
        assert page - heading <= 1, check.id
        for n, (caption, _) in enumerate(figures[check.id], 1):
            on = [i for i, p in enumerate(pages) if f"Figure {n}: {' '.join(caption.split()[:6])}" in p]
            assert on and on[0] >= page, (check.id, n)
            if n == 1:
                assert on[0] == page, check.id
                checked += 1
    assert checked >= 8


def test_a_long_verdict_keeps_the_summary_on_the_first_page(reference_fast, tmp_path):
    """The summary gives each verdict's first sentence, cut after about 110 characters: a failing check's long
    first sentence (He with fan_out: eight lines of numbers) pushed the last rows onto a second page."""
    from reports.render import summary_verdict

    result = reference_fast.model_copy(deep=True)
    long = "deep_model('kaiming') should use He: var = 2 / fan_in, but the first layer's output RMS is 0.212, " * 4
    for check in result.checks:
        check.message = long.strip() + ". More."
    text = " ".join(PdfReader(render_pdf(result, tmp_path / "long.pdf")).pages[0].extract_text().split())
    assert all(c.title in text for c in result.checks)
    assert summary_verdict("Short one. Then more.") == "Short one."
    cut = summary_verdict(long)
    assert cut.endswith(" …") and len(cut) <= 112 and long.startswith(cut[:-2])


def test_a_lost_item_stands_out_in_words_and_colour(reference_fast, tmp_path):
    result = reference_fast.model_copy(deep=True)
    check = result.check("activation_stats")
    item = next(i for i in check.items if i.max_points)
    item.passed, item.points = False, 0.0
    check.status, check.score = "failed", check.score - item.max_points
    html = render_html(result)
    assert f'<tr class="row-failed"><td><span class="status status-failed">failed</span> {item.title}' in html
    assert f'<tr class="row-failed">\n    <td><a href="#{check.id}">' in html  # the summary's row too
    text, _ = pdf_text(render_pdf(result, tmp_path / "lost.pdf"))
    assert f"failed {item.title}" in " ".join(text.split())


def test_no_internal_id_reaches_the_page(reference_fast, reference_pdf):
    """Check, item, run, task and assignment ids are the result's data, not the report's words (links use them
    as anchors, which are not text)."""
    from reports.render import run_words

    text = " ".join(pdf_text(reference_pdf)[0].split())
    ids = {c.id for c in reference_fast.checks} | {i.id for c in reference_fast.checks for i in c.items}
    ids |= {r.name for r in reference_fast.runs} | {r.task for r in reference_fast.runs}
    ids.add(reference_fast.assignment_id)
    coded = {i for i in ids if set(i) & set("_-+")}  # the ids that are no English word
    assert len(coded) >= 20
    assert [i for i in coded if i in text] == []
    assert run_words("sweep+sanity+fold") == "the sigma sweep, the initialization sanity looks, BatchNorm folding"
    assert run_words("new_task") == "new task"
