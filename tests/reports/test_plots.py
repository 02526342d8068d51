"""The report's figures: plain-text log labels, and the same figures whether one or two processes draw them."""

import os

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
    draw = plots.FIGURES["sigma_sweep"][0]

    def only_here(check):
        if os.getpid() != parent:
            raise RuntimeError("the forked copy fails")
        return draw[1](check)

    monkeypatch.setitem(plots.FIGURES, "sigma_sweep", [(draw[0], only_here), *plots.FIGURES["sigma_sweep"][1:]])
    drawn = plots.all_figures(reference_fast.checks, processes=2)
    assert drawn == plots.all_figures(reference_fast.checks, processes=1)
