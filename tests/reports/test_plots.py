"""The report's figures: plain-text log labels, and the same figures whether one or two processes draw them."""

import io
import os
import re

import matplotlib.mathtext
import matplotlib.pyplot as plt
import pytest

from reports import plots


@pytest.mark.parametrize(
    ("limits", "major", "minor"),
    [
        ((1e-3, 1e2), {1e-3: "10⁻³", 1.0: "10⁰", 100.0: "10²"}, {2e-2: "", 5.0: ""}),  # five decades
        ((0.015, 0.7), {0.1: "0.1"}, {0.02: "0.02", 0.5: "0.5", 0.3: ""}),  # under two decades
    ],
)
def test_log_axes_get_plain_text_labels(limits, major, minor):
    fig, ax = plt.subplots()
    ax.set_yscale("log")
    ax.set_ylim(*limits)
    plots._plain_log_labels(fig)
    for value, text in major.items():
        assert ax.yaxis.get_major_formatter()(value) == text
    for value, text in minor.items():
        assert ax.yaxis.get_minor_formatter()(value) == text
    plt.close(fig)


def test_figures_use_no_mathtext(reference_fast, monkeypatch):
    """Mathtext parsing took most of a report's drawing time: no figure may fall back to it."""
    parsed = []
    original = matplotlib.mathtext.MathTextParser.parse
    monkeypatch.setattr(
        matplotlib.mathtext.MathTextParser,
        "parse",
        lambda self, s, *a, **k: parsed.append(s) or original(self, s, *a, **k),
    )
    drawn = plots.all_figures(reference_fast.checks, processes=1)
    assert sum(len(f) for f in drawn) >= 10
    assert parsed == []


def test_two_processes_draw_the_same_figures_as_one(reference_fast):
    assert plots.all_figures(reference_fast.checks, processes=2) == plots.all_figures(
        reference_fast.checks, processes=1
    )


def test_a_failing_drawing_process_is_replaced_by_this_one(reference_fast, monkeypatch):
    parent = os.getpid()
    first = reference_fast.check("sigma_sweep").figures[0].draw  # the second figure of all: the forked copy's
    original = plots.DRAWERS[first]

    def only_here(check, **options):
        if os.getpid() != parent:
            raise RuntimeError("the forked copy fails")
        return original(check, **options)

    monkeypatch.setitem(plots.DRAWERS, first, only_here)
    monkeypatch.setitem(plots.DRAWERS, "loss_at_init", only_here)  # the first of all: this process draws it
    drawn = plots.all_figures(reference_fast.checks, processes=2)
    assert drawn == plots.all_figures(reference_fast.checks, processes=1)


def test_flattening_keeps_every_drawing_element_and_its_styled_groups():
    """Only groups with nothing but an id go; what is drawn, in which order and under which styled,
    transformed or clipped group, stays the same."""
    import xml.etree.ElementTree as ET

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4, 2))
    ax1.plot([1, 2, 3], [1, 4, 9], "o-", label="x")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.imshow([[0, 1], [1, 0]])
    ax2.set_title("t")
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    original = buffer.getvalue()
    flat = plots._flatten(original)

    def drawn(text):
        out = []

        def walk(el, styled):
            tag = el.tag.split("}")[1]
            if tag == "g":
                if set(el.attrib) - {"id"}:
                    styled = (*styled, tuple(sorted(el.attrib.items())))
            elif tag not in ("svg", "metadata") and "purl.org" not in el.tag and "w3.org/1999/02" not in el.tag:
                out.append((tag, tuple(sorted(el.attrib.items())), el.text, styled))
            for child in el:
                if tag != "metadata":
                    walk(child, styled)

        walk(ET.fromstring(text), ())
        return out

    assert drawn(flat) == drawn(original)
    assert len(drawn(original)) > 50
    assert flat.count("<g") < original.count("<g") / 2 and "<metadata" not in flat


def test_every_figure_fits_its_labels(reference_fast, monkeypatch):
    """The margins are worked out without measuring text: measure it here. Every text of every reference figure
    lies inside the figure, and no axis' tick or axis label runs into another axes."""
    checked = []

    def measure(fig):
        plots._tight(fig)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        page = fig.bbox.padded(1)
        for ax in fig.axes:
            (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
            labels = [t for t in ax.get_xticklabels(which="both") if x0 <= t.get_position()[0] <= x1]  # drawn ones
            labels += [t for t in ax.get_yticklabels(which="both") if y0 <= t.get_position()[1] <= y1]
            labels += [ax.xaxis.label, ax.yaxis.label, ax.title]
            labels += [ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text()]
            for text in labels:
                if not text.get_visible() or not text.get_text():
                    continue
                box = text.get_window_extent(renderer)
                name = f"{fig.axes.index(ax)}:{text.get_text()!r}"
                assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, name
                for other in fig.axes:
                    if other is not ax:
                        assert not box.overlaps(other.get_window_extent(renderer)), f"{name} runs into another axes"
        checked.append(fig)
        plt.close(fig)
        return "<svg/>"

    monkeypatch.setattr(plots, "svg", measure)
    plots.all_figures(reference_fast.checks, processes=1)
    assert len(checked) >= 10


def test_rendering_a_report_imports_no_torch():
    """`grader report` renders a stored result: torch (a second to import) has no part in it."""
    import subprocess
    import sys

    code = "import sys, reports.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_labels_too_long_for_the_estimate_fall_back_to_measured_layout():
    """A label whose estimated width leaves the axes no room (78 characters: 6 inches estimated, 4.5 drawn) is
    measured by tight_layout instead, and fits."""
    fig, ax = plt.subplots(figsize=(6.7, 2))
    ax.barh([0, 1], [1, 2])
    label = "a label of some eighty characters, far longer than any the report itself draws"
    ax.set_yticks([0, 1], [label, "b"])
    plots._tight(fig)
    fig.canvas.draw()
    box = ax.get_yticklabels()[0].get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and ax.get_position().width > 0.1
    plt.close(fig)


def test_a_figure_that_fails_on_odd_data_is_left_out_of_the_report(reference_fast, monkeypatch):
    """Odd metrics or series (a stored result of another version, values nobody expected) cost the figure that
    cannot draw them, not the report; it fails in the forked copy and again here, and is then left out."""
    check = reference_fast.check("sigma_sweep")
    first = check.figures[0]

    def fails(check, **options):
        raise ZeroDivisionError("odd data")

    monkeypatch.setitem(plots.DRAWERS, first.draw, fails)
    for processes in (1, 2):
        drawn = plots.all_figures(reference_fast.checks, processes=processes)
        sweep = drawn[[c.id for c in reference_fast.checks].index("sigma_sweep")]
        assert first.caption not in [caption for caption, _ in sweep] and len(sweep) == len(check.figures) - 1


def test_a_stored_result_names_only_the_drawing_functions_of_the_report(reference_fast):
    """A result file names its figures; a name that is not one of reports.plots' drawing functions draws nothing
    (a stored result is data: nothing else in the module is reached by name)."""
    check = reference_fast.check("sigma_sweep")
    assert {f.draw for c in reference_fast.checks for f in c.figures} <= set(plots.DRAWERS)
    names = ["svg", "_layout", "os", "sweep"]
    figures = [f.model_copy(update={"draw": name}) for f, name in zip(check.figures, names, strict=False)]
    odd = check.model_copy(update={"figures": figures})
    drawn = plots.all_figures([odd], processes=1)[0]
    assert [caption for caption, _ in drawn] == [check.figures[3].caption]


# -- the figures as a student reads them ------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[pytest.param(False, id="reference"),
                                        pytest.param(True, id="buggy", marks=pytest.mark.slow)])  # fmt: skip
def drawn_results(request, reference_fast, tmp_path_factory):
    """Every figure of real gradings: the reference and a file that raises at import (no figures at all, which
    must not trip anything either); in the full suite also He init with fan_out (a failing item: a grading of its
    own, 15-50 s)."""
    from bugs import BUGS
    from conftest import graded_fast

    folder = tmp_path_factory.mktemp("plots")
    broken = folder / "broken.py"
    broken.write_text("raise RuntimeError('the submission fails at import')\n")
    results = {"reference": reference_fast, "raises_at_import": graded_fast(broken)}
    if request.param:
        results["he_fan_out"] = graded_fast(BUGS["he_fan_out"].write(folder / "he_fan_out.py"))
    return results


def _each_figure(results):
    for name, result in results.items():
        for check in result.checks:
            for caption, fig in plots.figure_objects(check):
                try:
                    yield f"{name}/{check.id}: {caption[:40]}", fig
                finally:
                    plt.close(fig)


def _shows_data(ax):
    return ax.get_visible() and ax.axison and bool(ax.lines or ax.collections or ax.patches or ax.images)


def test_every_axes_that_shows_data_says_what_both_axes_measure(drawn_results):
    count = 0
    for name, fig in _each_figure(drawn_results):
        for k, ax in enumerate(fig.axes):
            if _shows_data(ax):
                count += 1
                assert ax.get_xlabel().strip(), f"{name}: axes {k} has no x label"
                assert ax.get_ylabel().strip(), f"{name}: axes {k} has no y label"
    assert count >= 30


def test_legends_lie_outside_every_data_area(drawn_results):
    """Inside the axes, even at loc="best", a legend covered curves that fill the plot: every legend lies below
    the plots, clear of every axes, of its own axes' tick and axis labels, and inside the figure."""
    legends = 0
    for name, fig in _each_figure(drawn_results):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            legends += 1
            box = legend.get_window_extent(renderer)
            page = fig.bbox.padded(1)
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, name
            for other in fig.axes:
                assert not box.overlaps(other.get_window_extent(renderer)), f"{name}: legend over an axes"
            labels = [ax.xaxis.label, *ax.get_xticklabels()]
            for text in labels:
                if text.get_visible() and text.get_text():
                    assert not box.overlaps(text.get_window_extent(renderer)), f"{name}: legend over {text}"
    assert legends >= 15


def test_decision_boundaries_have_labelled_axes_with_ticks(reference_fast):
    """The boundaries are drawn over the inputs' plane: x1 and x2 with their values, and the training points of
    each class (a marker shape each) over them."""
    check = reference_fast.check("sigma_sweep")
    j = [f.draw for f in check.figures].index("boundaries")
    fig = plots._figure(check, j)
    plots._tight(fig)
    fig.canvas.draw()
    assert len(fig.axes) >= 3
    for ax in fig.axes:
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
        assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "Glorot (Xavier)" in [ax.get_title() for ax in fig.axes]
    n_train = len(plots.series(check, "boundary.good").meta["points"])
    assert n_train == 100  # the [circle] n_train of the default lab
    for ax in fig.axes:
        shown = sum(len(c.get_offsets()) for c in ax.collections if c.get_label().startswith("class "))
        assert shown == n_train, (ax.get_title(), shown)
    plt.close(fig)


SNAKE = re.compile(r"[a-z]+_[a-z_]+")
#: Text that stays as it is: the lab's own code (calls such as deep_model('xavier'), SIGMAS['good']) and the
#: mode names of torch's kaiming_normal_ (fan_in, fan_out).
CODE = re.compile(r"\w+\([^)]*\)|SIGMAS\['\w+'\]|\bfan_(in|out)\b")


def _texts(fig):
    for ax in fig.axes:
        yield ax.get_title()
        yield ax.get_xlabel()
        yield ax.get_ylabel()
        yield from (t.get_text() for t in ax.get_xticklabels(which="both") + ax.get_yticklabels(which="both"))
        yield from (t.get_text() for t in ax.texts)
        legend = ax.get_legend()
        if legend is not None:
            yield legend.get_title().get_text()
            yield from (t.get_text() for t in legend.get_texts())
    yield fig.get_suptitle()
    yield from (t.get_text() for t in fig.texts)


def test_figures_show_words_not_internal_ids(drawn_results):
    ids = {"normal", "xavier", "kaiming", "glorot", "bn"}  # the ids that are not (English) words; and any snake_case
    seen = 0
    for name, fig in _each_figure(drawn_results):
        fig.canvas.draw()  # tick labels are formatted when drawn
        for text in _texts(fig):
            seen += bool(text)
            plain = CODE.sub("", text)
            assert not SNAKE.search(plain), f"{name}: {text!r}"
            assert not ids & set(re.findall(r"[a-z_]+", plain)), f"{name}: {text!r} shows an id"
    assert seen >= 200


def test_ids_read_as_words():
    assert plots._name("kaiming_fan_out") == "He (Kaiming), fan_out"
    assert plots._name("xavier") == "Glorot (Xavier)"
    assert plots._name("some_new_series") == "some new series"
