"""The report's figures, drawn from a GradeResult's series and metrics as SVG text (deterministic output)."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
from collections.abc import Callable

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from grader.result import CheckResult, Series  # noqa: E402

log = logging.getLogger(__name__)

plt.rcParams.update(
    {
        "svg.hashsalt": "labgrader",  # stable ids: the same result renders the same SVG
        "svg.fonttype": "none",  # text stays text: smaller SVGs, selectable in the PDF
        "font.family": "DejaVu Sans",
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 7,
        "legend.frameon": False,
        "figure.dpi": 100,
    }
)
WIDTH = 6.7  # inches: the text width of an A4 page with the report's margins
REGIME_COLORS = {
    "stuck": "#7f7f7f",
    "small": "#1f77b4",
    "good": "#2ca02c",
    "big": "#d62728",
    "chaotic": "#9467bd",
    "poor": "#ff7f0e",
    "diverged": "#000000",
}
LN = {2: math.log(2), 10: math.log(10)}
#: The words a figure shows for the ids a stored result uses (init schemes, variants, series and regime names).
NAMES = {
    "normal": "N(0, 1)",
    "xavier": "Glorot (Xavier)",
    "glorot": "Glorot (Xavier)",
    "kaiming": "He (Kaiming)",
    "kaiming_fan_in": "He (Kaiming), fan_in",
    "kaiming_fan_out": "He (Kaiming), fan_out",
    "with_dropout": "with dropout",
    "without_dropout": "without dropout",
    "recommended": "your init",
    "recommended_raw": "your init, raw inputs",
    "good_raw": "good sigma, raw inputs",
    "small": "small",
    "good": "good",
    "big": "big",
    "plain": "plain network",
    "bn": "with BatchNorm",
}


def _name(key: str) -> str:
    """The words for an id: from NAMES, or the id with its underscores as spaces."""
    return NAMES.get(key, key.replace("_", " "))


SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def _log_labels(axis: Axis) -> tuple[FuncFormatter, FuncFormatter]:
    """Plain-text labels for a log axis (matplotlib's default labels are mathtext, whose parser took most of a
    report's drawing time): powers of ten as '10⁻³', or, on an axis spanning under two decades, decimals with the
    2s and 5s in between labelled too."""

    def narrow() -> bool:
        lo, hi = sorted(axis.get_view_interval())
        return lo > 0 and hi / lo < 100

    def major(value: float, _pos: int | None = None) -> str:
        if value <= 0 or not math.isfinite(value):
            return ""
        exponent = math.log10(value)
        if abs(exponent - round(exponent)) > 1e-9:
            return ""
        return f"{value:g}" if narrow() else "10" + str(round(exponent)).translate(SUPERSCRIPT)

    def minor(value: float, _pos: int | None = None) -> str:
        if value <= 0 or not math.isfinite(value) or not narrow():
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value))
        return f"{value:g}" if min(abs(mantissa - 2), abs(mantissa - 5)) < 1e-6 else ""

    return FuncFormatter(major), FuncFormatter(minor)


def _plain_log_labels(fig: Figure) -> None:
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                major, minor = _log_labels(axis)
                axis.set_major_formatter(major)
                axis.set_minor_formatter(minor)
                lo, hi = sorted(axis.get_view_interval())
                if lo > 0 and hi / lo >= 100:  # minor ticks only where they carry labels: each is a Tick object
                    axis.set_minor_locator(NullLocator())  # of two lines and two texts to build and draw


CHAR = 0.075  # inches: the widest digit or letter of 8-pt DejaVu Sans, and a little more
LINE = 0.16  # inches: one line of 8- or 9-pt text with its padding
PAD = 0.08  # inches: between a label and the figure's edge or the next axes
TICK = 0.1  # inches: a tick mark and the gap to its label


def _tick_labels(axis: Axis) -> list[str]:
    """The labels the axis will draw (major, and minor where a narrow log axis labels them), formatted without
    building its Tick objects."""
    lo, hi = sorted(axis.get_view_interval())
    labels = []
    for locs, formatter in ((axis.get_majorticklocs(), axis.get_major_formatter()),
                            (axis.get_minorticklocs(), axis.get_minor_formatter())):  # fmt: skip
        shown = [v for v in locs if lo - 1e-9 * abs(lo) <= v <= hi + 1e-9 * abs(hi)]
        labels += [label for label in formatter.format_ticks(shown) if label]
    return labels


LEGEND_ROW = 0.17  # inches: one row of a 7-pt legend with its spacing


def _legend(ax: Axes, handles: list | None = None, ncol: int | None = None, fontsize: float = 7, **kw) -> None:
    """A legend below the axes, outside its data area (inside, even at loc="best", it covered curves that fill
    the plot). As many columns as the estimated label widths allow under the axes; _layout moves it below the
    tick and axis labels and makes room for it."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [h.get_label() for h in handles]
    if not handles:
        return
    ncols = ax.get_subplotspec().get_gridspec().get_geometry()[1] if ax.get_subplotspec() else 1
    room = ax.figure.get_size_inches()[0] / ncols - 0.3
    width = max(len(label) for label in labels) * 0.8 * CHAR * fontsize / 8 + 0.45  # handle, gap, label
    ncol = max(1, min(len(labels), ncol or len(labels), int(room // width)))
    legend = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=ncol, fontsize=fontsize,
                       title_fontsize=fontsize, **kw)  # fmt: skip
    legend.rows_below = -(-len(labels) // ncol) + (1 if kw.get("title") else 0)  # type: ignore[attr-defined]


def _edges(ax: Axes) -> dict[str, float]:
    """What this axes needs around it, in inches: tick labels, axis labels, title, offset text, and a legend
    placed below it by _legend."""
    x_labels, y_labels = _tick_labels(ax.xaxis), _tick_labels(ax.yaxis)
    x_offset = ax.xaxis.get_major_formatter().get_offset() if x_labels else ""  # e.g. "1e-5" beside the axis
    y_offset = ax.yaxis.get_major_formatter().get_offset() if y_labels else ""
    bottom = (TICK + LINE if x_labels else 0) + (LINE if ax.get_xlabel() else 0) + (LINE if x_offset else 0)
    legend, below = ax.get_legend(), 0.0
    if legend is not None and hasattr(legend, "rows_below"):
        fontsize = legend.get_texts()[0].get_fontsize()
        legend.borderaxespad = (bottom + 0.02) * 72 / fontsize  # in font sizes: from the axes to the legend
        below = legend.rows_below * LEGEND_ROW * fontsize / 7 + 0.04
    return {
        "left": (TICK + CHAR * max(len(t) for t in y_labels) if y_labels else 0) + (LINE if ax.get_ylabel() else 0),
        "bottom": bottom + below,
        "legend": below,
        "top": (LINE + 0.04 if ax.get_title() else 0) + (LINE if y_offset else 0),
        "right": CHAR * max((len(t) for t in x_labels[-1:]), default=0) / 2,
    }


def _layout(fig: Figure) -> None:
    """Place the axes with margins worked out from what they show, in inches, without laying out any text:
    matplotlib's tight_layout measured every label (40% of the figures' drawing time). The widths are upper
    bounds for the labels these figures use (short numbers, a few words)."""
    axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    if not axes:
        return
    nrows, ncols = axes[0].get_subplotspec().get_gridspec().get_geometry()
    edges = [(ax.get_subplotspec(), _edges(ax)) for ax in axes]
    rows = {spec.rowspan.start for spec, _ in edges}
    legends = sum(max(e["legend"] for spec, e in edges if spec.rowspan.start == r) for r in rows)
    if legends:  # the figure grows by its legends below the axes: the plots keep their height
        fig.set_size_inches(fig.get_size_inches()[0], fig.get_size_inches()[1] + legends)
    width, height = fig.get_size_inches()
    left = max(e["left"] for spec, e in edges if spec.is_first_col())
    gap_x = max((e["left"] for spec, e in edges if not spec.is_first_col()), default=0) + 2 * PAD
    right = max(e["right"] for spec, e in edges if spec.is_last_col())
    bottom = max(e["bottom"] for spec, e in edges if spec.is_last_row())
    top = max(e["top"] for spec, e in edges if spec.is_first_row())
    top += LINE + 0.04 if fig.get_suptitle() else 0
    gap_y = max((e["bottom"] for spec, e in edges if not spec.is_last_row()), default=0)
    gap_y += max((e["top"] for spec, e in edges if not spec.is_first_row()), default=0) + 2 * PAD
    inner_w = width - left - right - 2 * PAD
    inner_h = height - top - bottom - 2 * PAD
    axes_w = (inner_w - gap_x * (ncols - 1)) / ncols
    axes_h = (inner_h - gap_y * (nrows - 1)) / nrows
    if min(axes_w, axes_h) < 0.5:  # labels this long were not foreseen: let matplotlib measure them (slower)
        fig.tight_layout(pad=0.3)
        return
    fig.subplots_adjust(
        left=(left + PAD) / width,
        right=1 - (right + PAD) / width,
        bottom=(bottom + PAD) / height,
        top=1 - (top + PAD) / height,
        wspace=gap_x / axes_w if ncols > 1 else 0,
        hspace=gap_y / axes_h if nrows > 1 else 0,
    )


def _tight(fig: Figure) -> None:
    """Plain log labels, then margins that fit them (savefig then draws once: its bbox_inches="tight", and
    tight_layout too, lay the whole figure out an extra time)."""
    _plain_log_labels(fig)
    _layout(fig)


def svg(fig: Figure) -> str:
    _tight(fig)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, dpi=200)  # dpi: of rasterized artists only
    plt.close(fig)
    return _flatten(buffer.getvalue())


_G_TAG = re.compile(r"<(/?)g\b([^>]*)>")
_ID_ONLY = re.compile(r'id="[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _flatten(text: str) -> str:
    """Drop the groups that carry nothing but an id (matplotlib wraps every tick, line and text in one or two),
    and the RDF metadata: a third of the SVG's elements, each of which WeasyPrint styles and paints in Python.
    The drawing is the same: such a group has no style, transform or clip of its own."""
    out, stack, last = [], [], 0
    for m in _G_TAG.finditer(text):
        closing, attributes = m.group(1) == "/", m.group(2).strip()
        if closing:
            keep = stack.pop()
        else:
            keep = not (attributes == "" or _ID_ONLY.fullmatch(attributes))
            if attributes.endswith("/"):  # <g/>: nothing to drop or keep open
                continue
            stack.append(keep)
        if not keep:
            out.append(text[last : m.start()])
            last = m.end()
    out.append(text[last:])
    return _METADATA.sub("", "".join(out))


def series(check: CheckResult, name: str) -> Series | None:
    return next((s for s in check.series if s.name == name), None)


def _log_y(ax: Axes) -> None:
    """A log y axis where there is a positive value to show; a run whose values are all NaN, zero or negative
    (a hostile or diverged model) keeps a linear axis instead of failing the whole report."""
    values = [float(v) for line in ax.get_lines() for v in np.asarray(line.get_ydata(), dtype=float).ravel()]
    values += [float(p[1]) for c in ax.collections for p in np.asarray(c.get_offsets(), dtype=float)]
    values += [float(p.get_height()) for p in ax.patches]
    if any(np.isfinite(v) and v > 0 for v in values):
        ax.set_yscale("log")


def _pairs(s: Series) -> tuple[list[float], list[float]]:
    xs, ys = s.x or list(range(len(s.y or []))), s.y or []
    kept = [(x, y) for x, y in zip(xs, ys, strict=False) if x is not None and y is not None]
    return [p[0] for p in kept], [p[1] for p in kept]


def _curves(ax: Axes, check: CheckResult, names: list[tuple[str, str]], level: float | None, ylabel: str) -> None:
    for i, (prefix, label) in enumerate(names):
        color = f"C{i}"
        for part, style in (("train_loss", "-"), ("val_loss", "--")):
            s = series(check, f"{prefix}.{part}")
            if s is None:
                continue
            x, y = _pairs(s)
            ax.plot(x, y, style, color=color, lw=1.2, label=f"{label} ({'train' if part == 'train_loss' else 'val'})")
    if level is not None:
        ax.axhline(level, color="k", lw=0.8, ls=":", label=f"chance: ln(n) = {level:.3f}")
    _log_y(ax)
    ax.set_ylabel(ylabel)
    _legend(ax)


def loss_at_init(check: CheckResult) -> Figure | None:
    s = series(check, "loss_at_init")
    if s is None or not s.y:
        return None
    labels = s.meta.get("labels", [])
    expected = s.meta.get("expected", [])
    fig, ax = plt.subplots(figsize=(WIDTH, 0.35 * len(labels) + 1.0))
    ys = list(range(len(labels)))
    measured = [v if v is not None else float("nan") for v in s.y]
    ax.barh(ys, measured, color="C0", label="measured at init")
    ax.scatter(expected, ys, color="k", marker="|", s=200, zorder=3, label="expected: ln(n classes)")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("cross-entropy loss at initialization (nats, log scale)")
    ax.set_ylabel("model (call)")
    _legend(ax)
    return fig


def sweep(check: CheckResult) -> Figure | None:
    loss, acc = series(check, "sweep.final_val_loss"), series(check, "sweep.final_val_acc")
    if loss is None or acc is None or not loss.x:
        return None
    regimes = loss.meta.get("regimes", [])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    for ax, s, label in ((ax1, loss, "final validation loss (nats)"), (ax2, acc, "final validation accuracy")):
        x, y = _pairs(s)
        ax.plot(x, y, color="0.6", lw=1, zorder=1)
        for xi, yi, regime in zip(s.x or [], s.y or [], regimes, strict=False):
            if yi is not None:
                ax.scatter([xi], [yi], color=REGIME_COLORS.get(regime, "k"), s=22, zorder=2)
        for key, marker in (("small", "v"), ("good", "o"), ("big", "^")):
            m = check.metrics.get(f"sigma_{key}")
            if m:
                value = m["final_val_loss"] if s is loss else m["final_val_acc"]
                ax.scatter([m["sigma"]], [value], marker=marker, facecolor="none", edgecolor="k", s=70, zorder=3,
                           label=f"SIGMAS['{key}'] = {m['sigma']:g}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("sigma of N(0, sigma) weights (log scale)")
        ax.set_ylabel(label)
    _log_y(ax1)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=r) for r, c in REGIME_COLORS.items()
               if r in regimes]  # fmt: skip
    _legend(ax1, handles=handles, title="regime (median seed)")
    _legend(ax2)
    return fig


def sweep_curves(check: CheckResult) -> Figure | None:
    names = [(p, label) for p, label in (("sigma_small", "small sigma"), ("sigma_good", "good sigma"),
                                          ("sigma_big", "big sigma"), ("recommended", "your init"),
                                          ("glorot", "Glorot (Xavier)"))
             if series(check, f"{p}.train_loss") is not None]  # fmt: skip
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0))
    _curves(ax, check, names, LN[2], "cross-entropy loss (nats, log scale)")
    ax.set_xlabel("training step (full-batch SGD, lr 0.1)")
    return fig


def boundaries(check: CheckResult) -> Figure | None:
    panels = [s for s in check.series if s.name.startswith("boundary.") and s.values]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, WIDTH / len(panels) + 0.4), squeeze=False)
    for ax, s in zip(axes[0], panels, strict=True):
        extent = s.meta.get("extent")
        image = [[v if v is not None else float("nan") for v in row] for row in s.values or []]
        ax.imshow(image, origin="lower", extent=extent, vmin=0, vmax=1, cmap="RdBu_r", aspect="equal")
        ax.contour(
            [[v if v == v else 0.5 for v in row] for row in image], levels=[0.5], colors="k", linewidths=0.8,
            extent=extent, origin="lower",
        )  # fmt: skip
        points = [p for p in s.meta.get("points") or [] if isinstance(p, list) and len(p) == 3]
        for cls, marker, color in ((0, "o", "#1f4e99"), (1, "^", "#b3362c")):  # shape and colour per class
            xs = [p[0] for p in points if p[2] == cls]
            ys = [p[1] for p in points if p[2] == cls]
            if xs:
                ax.scatter(xs, ys, s=7, marker=marker, facecolors="white", edgecolors=color, linewidths=0.6,
                           label=f"class {cls} (training)")  # fmt: skip
        label = s.name.removeprefix("boundary.")
        sigma = s.meta.get("sigma")
        shown = label in ("small", "good", "big") and isinstance(sigma, int | float)
        ax.set_title(f"{_name(label)} (sigma {sigma:g})" if shown else _name(label), fontsize=8)
        ax.locator_params(nbins=3)  # a few ticks: the panels are narrow
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        if extent:  # the points do not widen the panel beyond the boundary's grid
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
        ax.grid(False)
    if any(s.meta.get("points") for s in panels):
        _legend(axes[0][0], ncol=2)
    return fig


def scaling(check: CheckResult) -> Figure | None:
    names = [(p, label) for p, label in (("sigma_good", "good sigma, scaled"), ("good_raw", "good sigma, raw"),
                                          ("recommended", "your init, scaled"), ("recommended_raw", "your init, raw"))
             if series(check, f"{p}.train_loss") is not None]  # fmt: skip
    if len(names) < 2:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    _curves(ax, check, names, LN[2], "cross-entropy loss (nats, log scale)")
    ax.set_xlabel("training step (full-batch SGD, lr 0.1)")
    return fig


def probes(check: CheckResult) -> Figure | None:
    """SIGMAS['good'] with its inputs scaled, and with larger learning rates: the training loss of the first seed
    for each value, labelled with the regime most seeds showed."""
    panels = [(key, field, fmt, xlabel) for key, field, fmt, xlabel in (
        ("input_scales", "scale", "inputs x{:g}", "training step (inputs scaled; lr 0.1)"),
        ("learning_rates", "lr", "lr {:g}", "training step (standardized inputs)"),
    ) if check.metrics.get(key)]  # fmt: skip
    good = series(check, "sigma_good.train_loss")
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 2.8), squeeze=False)
    for ax, (key, field, fmt, xlabel) in zip(axes[0], panels, strict=True):
        if good is not None:
            ax.plot(*_pairs(good), color="k", lw=1.2, label="as in the lab: good")
        for i, row in enumerate(check.metrics[key]):
            label = "scale" if field == "scale" else "lr"
            s = series(check, f"{label}_{row[field]:g}.train_loss")
            if s is not None:
                ax.plot(*_pairs(s), color=f"C{i}", lw=1.0, label=f"{fmt.format(row[field])}: {_name(row['regime'])}")
        ax.axhline(LN[2], color="k", lw=0.8, ls=":")
        _log_y(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss (nats, log scale)")
        _legend(ax)
    return fig


def zero_init(check: CheckResult) -> Figure | None:
    """makemore E01: the largest change of each parameter of the all-zero circle model over training."""
    m = check.metrics.get("zero_init")
    if not m or not m.get("moved"):
        return None
    names, moved = list(m["moved"]), [float(v) for v in m["moved"].values()]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.28 * len(names) + 0.9))
    ys = list(range(len(names)))
    ax.barh(ys, moved, color=["C3" if v > 0 else "0.6" for v in moved])
    top = max([v for v in moved if math.isfinite(v)], default=0.0) or 1.0
    for y, v in zip(ys, moved, strict=True):
        ax.text(min(v, top) + top * 0.01, y, f"{v:.3g}" if v else "0: unchanged", va="center", fontsize=7)
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel(f"largest |change| of the parameter over {m.get('steps', '')} SGD steps")
    ax.set_ylabel("parameter")
    return fig


def activations(check: CheckResult) -> Figure | None:
    inits = [i for i in ("normal", "xavier", "kaiming") if series(check, f"{i}.abs_mean") is not None]
    if not inits:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.8))
    for i, init in enumerate(inits):
        for ax, measured, expected in ((axes[0], "rms", "expected_rms"), (axes[1], "grad_rms", "expected_grad_rms")):
            m, e = series(check, f"{init}.{measured}"), series(check, f"{init}.{expected}")
            if m is not None:
                ax.plot(*_pairs(m), "o-", ms=2.5, color=f"C{i}", lw=1)
            if e is not None:
                ax.plot(*_pairs(e), ":", color=f"C{i}", lw=1.2)
    for ax, title, ylabel in ((axes[0], "forward: RMS of each layer's output", "RMS of output (log scale)"),
                              (axes[1], "backward: RMS of its gradient", "RMS of gradient (log scale)")):  # fmt: skip
        _log_y(ax)
        ax.set_xlabel("layer (1 = first Linear)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    # two short legends, one under each panel: the inits' colours, and which line is measured (six entries,
    # each init twice, made the figure an inch taller)
    _legend(axes[0], handles=[plt.Line2D([], [], color=f"C{i}", lw=1.2, label=_name(init)) for i, init in
                              enumerate(inits)])  # fmt: skip
    _legend(axes[1], handles=[plt.Line2D([], [], marker="o", ms=2.5, color="0.3", lw=1, label="measured"),
                              plt.Line2D([], [], ls=":", color="0.3", lw=1.2, label="expected")])  # fmt: skip
    return fig


def activation_abs(check: CheckResult) -> Figure | None:
    inits = [i for i in ("normal", "xavier", "kaiming") if series(check, f"{i}.abs_mean") is not None]
    if not inits:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    for i, init in enumerate(inits):
        for ax, key in ((axes[0], "abs_mean"), (axes[1], "abs_std")):
            s = series(check, f"{init}.{key}")
            if s is not None:
                ax.plot(*_pairs(s), "o-", ms=2.5, lw=1, color=f"C{i}", label=_name(init))
    for ax, title in ((axes[0], "mean |activation|"), (axes[1], "std |activation|")):
        _log_y(ax)
        ax.set_xlabel("layer (1 = first Linear)")
        ax.set_ylabel(f"{title} (log scale)")
        ax.set_title(title)
    _legend(axes[0])
    return fig


def dropout_curves(check: CheckResult) -> Figure | None:
    if series(check, "with_dropout.train_loss") is None:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 2.8))
    _curves(ax1, check, [("with_dropout", "dropout"), ("without_dropout", "no dropout")], LN[10],
            "cross-entropy loss (nats)")  # fmt: skip
    ax1.set_xlabel("epoch (AdamW, lr 3e-4)")
    for i, variant in enumerate(("with_dropout", "without_dropout")):
        for part, style in (("train_error", "-"), ("val_error", "--")):
            s = series(check, f"{variant}.{part}")
            if s is not None:
                which = "train" if part == "train_error" else "val"
                ax2.plot(*_pairs(s), style, color=f"C{i}", lw=1.2, label=f"{_name(variant)} ({which})")
    ax2.set_ylabel("error (%)")
    ax2.set_xlabel("epoch")
    _legend(ax2, ncol=2)
    images = (series(check, "with_dropout.train_loss") or Series(name="")).meta.get("images")
    if images:
        fig.suptitle(f"curves on {images['train']} training and {images['val']} validation images", fontsize=8)
    return fig


def mc_ensemble(check: CheckResult) -> Figure | None:
    s = series(check, "mc.error")
    if s is None:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 2.4))
    k, error = _pairs(s)
    ci = s.meta.get("ci95")
    if ci and len(ci) == len(k):
        low = [e - c for e, c in zip(error, ci, strict=True)]
        high = [e + c for e, c in zip(error, ci, strict=True)]
        ax.fill_between(k, low, high, color="C0", alpha=0.2, lw=0, label="95% interval (binomial)")
    ax.plot(k, error, color="C0", lw=1.2, label="average of K train-mode passes")
    ax.axhline(s.meta.get("eval_error", float("nan")), color="k", ls="--", lw=1, label="eval mode (weight scaling)")
    ax.set_xscale("log")
    ax.set_xlabel("ensemble size K (train-mode passes, log scale)")
    ax.set_ylabel("validation error (%)")
    _legend(ax)
    return fig


def fold(check: CheckResult) -> Figure | None:
    s, err = series(check, "fold.outputs"), series(check, "fold.abs_error")
    if s is None:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    x, y = _pairs(s)
    ax1.scatter(x, y, s=4, color="C0", rasterized=True)  # hundreds of dots: one picture, not an SVG element each
    lo, hi = min(x + y), max(x + y)
    ax1.plot([lo, hi], [lo, hi], color="k", lw=0.6, ls=":")
    ax1.set_xlabel("output of the original model (eval mode)")
    ax1.set_ylabel("output of the folded model")
    if err is not None and err.y:
        values = [max(v, 1e-12) for v in err.y if v is not None]
        ax2.hist([math.log10(v) for v in values], bins=30, color="C1")
        tolerance, scale = check.metrics.get("tolerance", 1e-5), check.metrics.get("scale", 1.0)
        if isinstance(tolerance, int | float) and isinstance(scale, int | float) and tolerance * scale > 0:
            # the tolerance is relative to max(1, max |original|): as an absolute error it is that much larger
            ax2.axvline(math.log10(tolerance * scale), color="k", ls="--", lw=1,
                        label="tolerance" if scale == 1 else f"tolerance ({tolerance:g} x {scale:.3g})")  # fmt: skip
            _legend(ax2)
        ax2.set_xlabel("log10 |folded - original|")
        ax2.set_ylabel("count (outputs)")
    return fig


def _histograms(ax: Axes, layers: list[dict], key: str, title: str) -> None:
    for i, layer in enumerate(layers):
        h = layer.get(key)
        if not h:
            continue
        edges, counts = h["edges"], h["counts"]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        if key == "histogram":  # tanh layers: the saturated share (|x| > 0.97) instead of dead ReLU units
            share = (f"saturated {layer['saturated_percent']:.1f}%" if "saturated_percent" in layer
                     else f"dead {layer['dead_percent']:.1f}%")  # fmt: skip
            label = f"layer {layer['layer']}: mean {layer['mean']:.2g}, std {layer['std']:.2g}, {share}"
        else:
            label = f"layer {layer['layer']}: mean {layer['grad_mean']:.1e}, std {layer['grad_std']:.1e}"
        ax.plot(centers, counts, color=f"C{i}", lw=1, label=label)
    _log_y(ax)
    ax.set_title(title)
    ax.set_ylabel("count (log scale)")
    _legend(ax, fontsize=6)


def diagnostics(check: CheckResult, variant: str, when: str = "final") -> Figure | None:
    """makemore's four diagnostics of one model, at init or after training (the update:data ratio, measured over
    training, is drawn with the latter)."""
    m = check.metrics.get(variant)
    if not m or not m.get(when):
        return None
    final = m[when]
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 4.6))
    _histograms(axes[0][0], final["layers"], "histogram", "activations (input of each Linear)")
    axes[0][0].set_xlabel("activation value")
    _histograms(axes[0][1], final["layers"], "grad_histogram", "gradients of the loss at those activations")
    axes[0][1].set_xlabel("gradient value")
    axes[0][1].ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))  # "-1.5 ... 1.5" and "1e-4" once
    ratios = final["grad_data"]
    names = [f"W{r['layer'] + 1}\n{'x'.join(map(str, r['shape']))}" for r in ratios]  # W1 and its (out x in)
    axes[1][0].bar(names, [r["ratio"] for r in ratios], color="C2")
    if len(ratios) > 4:  # six layers of a tanh network: room for each label
        axes[1][0].tick_params(axis="x", labelsize=6)
    _log_y(axes[1][0])
    axes[1][0].set_title("weight gradient : data ratio (std)")
    axes[1][0].set_xlabel("weight matrix (out x in)")
    axes[1][0].set_ylabel("std(grad) / std(W) (log scale)")
    ax = axes[1][1]
    if when != "final":
        ax.axis("off")
        ax.text(0.5, 0.5, "update : data ratio over training:\nsee the figure after training", ha="center",
                va="center", fontsize=8, color="0.4", transform=ax.transAxes)  # fmt: skip
        return fig
    for j, s in enumerate(x for x in check.series if x.name.startswith(f"{variant}.update_ratio.")):
        ax.plot(*_pairs(s), lw=0.8, color=f"C{j}", label=f"W{j + 1}")
    ax.axhline(-3, color="k", ls="--", lw=1, label="1e-3 guide")
    ax.set_title("update : data ratio (log10)")
    ax.set_xlabel("training step")
    ax.set_ylabel("log10(update std / W std)")
    _legend(ax, fontsize=6)
    return fig


Captioned = tuple[str, str]  # (caption, svg)
#: What a check's figures may name (CheckResult.figures, from its CheckSpec): the drawing functions of this module,
#: each (check, **options) -> a Figure or None. A stored result names them; nothing else is looked up by name.
DRAWERS: dict[str, Callable[..., Figure | None]] = {
    f.__name__: f
    for f in (loss_at_init, sweep, sweep_curves, boundaries, scaling, probes, activations, activation_abs,
              dropout_curves, mc_ensemble, fold, diagnostics, zero_init)
}  # fmt: skip


def _figure(check: CheckResult, j: int) -> Figure | None:
    ref = check.figures[j]
    drawer = DRAWERS.get(ref.draw)
    if drawer is None:
        log.warning("check %s names an unknown figure %r", check.id, ref.draw)
        return None
    return drawer(check, **ref.options)


def _draw(check: CheckResult, j: int) -> str | None:
    fig = _figure(check, j)
    return None if fig is None else svg(fig)


def figure_objects(check: CheckResult) -> list[tuple[str, Figure]]:
    """The figures of one check as matplotlib Figures, laid out as the SVGs are (the caller closes them): what
    the SVG path draws, for a test to inspect."""
    drawn = [(ref.caption, _figure(check, j)) for j, ref in enumerate(check.figures)]
    for _, fig in drawn:
        if fig is not None:
            _tight(fig)
    return [(caption, fig) for caption, fig in drawn if fig is not None]


def figures(check: CheckResult) -> list[Captioned]:
    """The figures of one check that its data allows (none for a check that could not run)."""
    return all_figures([check], processes=1)[0]


def all_figures(checks: list[CheckResult], processes: int = 2) -> list[list[Captioned]]:
    """The figures of every check; with processes=2 a forked copy of this process draws every other figure."""
    jobs = [(i, j) for i, c in enumerate(checks) for j in range(len(c.figures))]

    here = os.getpid()

    def draw(job: Job) -> str | None:
        i, j = job
        try:
            return _draw(checks[i], j)
        except Exception:  # odd data in one figure costs that figure, not the report
            if os.getpid() != here:
                raise  # in the forked copy: it fails as a whole, and this process draws its share again
            log.exception("figure %d of check %s could not be drawn", j, checks[i].id)
            plt.close("all")
            return None

    if processes > 1 and len(jobs) > 1 and hasattr(os, "fork"):
        drawn = _share_with_fork(jobs[0::2], jobs[1::2], draw)  # every other figure: heavy and light ones mix
    else:
        drawn = {job: draw(job) for job in jobs}
    return [
        [(ref.caption, svg) for j, ref in enumerate(c.figures) if (svg := drawn[(i, j)]) is not None]
        for i, c in enumerate(checks)
    ]


Job = tuple[int, int]  # (check index, figure index)


def _share_with_fork(mine: list[Job], theirs: list[Job], draw: Callable[[Job], str | None]) -> dict[Job, str | None]:
    """Draw `theirs` in a forked child while this process draws `mine`. The child sends SVG text back as JSON
    (our own process, so nothing untrusted crosses); if it fails, this process draws its share as well."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, write, and leave without running any of the parent's exit handlers
        code = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(json.dumps([[i, j, draw((i, j))] for i, j in theirs]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    drawn = {job: draw(job) for job in mine}  # meanwhile the child may wait on a full pipe: that is fine
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        drawn.update({(i, j): svg for i, j, svg in json.loads(data)})
    else:
        drawn.update({job: draw(job) for job in theirs})
    return drawn
