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
    result = grade(SUBMISSIONS / "hostile" / "syntax_error.py", load_assignment(), fast=True)
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert "could not be loaded" in text and f"0 / {MAX_POINTS:g} points" in text
    assert result.submission.load_failure.message.split(".")[0] in text.replace("\n", " ")
    assert text.count("What went wrong") == len(result.checks)
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
    assert "Written answers" in text and "Not answered." in text and "Submitted 2026-12-05 10:00 UTC" in text
    assert " ".join(text.split()).count("never recovers") == 120  # the long answer is whole, across pages
    assert (tmp_path / "report.html").read_text() == html
    assert "Written answers" not in render_html(reference_fast)  # an assignment without questions: no section


def test_a_check_worth_nothing_reads_as_reported_not_scored(reference_fast):
    html = render_html(reference_fast)
    reported = [c for c in reference_fast.checks if not c.max_score]
    assert reported, "the lab has a reported check (training diagnostics)"
    assert html.count('status-reported">reported, not scored') == 2 * len(reported)  # summary and heading
    assert "0 / 0" not in html


def test_each_check_opens_with_its_verdict_and_first_figure_on_one_page(reference_fast, reference_pdf):
    """The layout: the summary fits the first page, and each check's page shows its heading, verdict and first
    figure together (a figure used to slip to a page of its own after the tables, leaving pages mostly empty)."""
    from reports.plots import all_figures

    pages = [" ".join(p.extract_text().split()) for p in PdfReader(reference_pdf).pages]
    assert all(c.title.split(":")[0] in pages[0] for c in reference_fast.checks), "the summary spills over"
    figures = dict(zip((c.id for c in reference_fast.checks), all_figures(reference_fast.checks), strict=True))
    checked = 0
    for check in reference_fast.checks:
        heading = next(i for i, p in enumerate(pages) if i > 0 and p.startswith(check.title))
        if figures[check.id]:
            assert "Figure 1:" in pages[heading], check.id
            checked += 1
    assert checked >= 6
