"""docs/benchmarks.png: each benchmark's ratio against its goal, and the timeline of the measured grade."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from bench.common import Row  # noqa: E402

# What the issue asks of each figure, as a ratio baseline / ours where one exists (None: no ratio goal).
GOALS = {"sweep": 10.0, "workers": 1.8, "scaling": 1.8}


def plot(rows: list[Row], timeline: list[dict], path: Path, met: dict[str, bool] | None = None) -> Path:
    """Bars: green where the row's goal is met, red where not, grey where it has none (`met`)."""
    met = met or {}
    panels = 2 if timeline else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 0.45 * len(rows) + 1.6), squeeze=False)
    ax = axes[0][0]
    names = [r.name for r in rows][::-1]
    ratios = [r.ratio for r in rows][::-1]
    colours = {True: "C2", False: "C3", None: "0.6"}
    ax.barh(names, ratios, color=[colours[met.get(n)] for n in names])
    for i, (n, r) in enumerate(zip(names, ratios, strict=True)):
        ax.text(max(r, GOALS.get(n, 0.0)), i, f" {r:.2f}x", va="center", fontsize=8)  # right of the goal tick
        if n in GOALS:
            ax.plot([GOALS[n]] * 2, [i - 0.4, i + 0.4], color="k", lw=1.5)
    ax.axvline(1, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("ratio baseline / ours (log); green: goal met, red: not, grey: no goal; tick: ratio goal")
    ax.set_title("benchmarks", fontsize=10)
    if timeline:
        ax = axes[0][1]
        runs = sorted(timeline, key=lambda r: r.get("started_s") or 0)
        for i, r in enumerate(runs):
            start = r.get("started_s") or 0.0
            ax.barh(i, r["seconds"], left=start, color="C0" if r["ok"] else "C3")
            ax.text(start + r["seconds"], i, f" {r['seconds']:.1f} s", va="center", fontsize=7)
        ax.set_yticks(range(len(runs)), [r["name"] for r in runs], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.set_xlabel("seconds after the first sandbox task was queued")
        ax.set_title("one grade of the reference: sandbox tasks", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
