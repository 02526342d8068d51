"""Benchmarks of labgrader: `python bench/run.py [NAME...] [--quick]`.

Each benchmark measures a baseline and our way in the same run and prints `name  baseline  ours  ratio`; the
table goes to docs/benchmarks.md. --quick uses small budgets (a smoke run: its numbers are not the record)."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.assignment import load_assignment  # noqa: E402
from grader.data import CircleData  # noqa: E402
from grader.sandbox import lab_tasks  # noqa: E402
from grader.session import log_schedule  # noqa: E402

REFERENCE = ROOT / "examples" / "reference_solution.py"


@dataclass
class Row:
    name: str
    baseline: float  # seconds
    ours: float  # seconds
    what: str

    @property
    def ratio(self) -> float:
        return self.baseline / self.ours


def _reference():
    spec = importlib.util.spec_from_file_location("reference_solution", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_sweep(quick: bool) -> Row:
    """Part 1's sweep of the reference solution (every sigma and seed, Glorot, raw inputs): the lab's loop of one
    model at a time against all runs as one vmapped computation. Same losses required, bit for bit."""
    a = load_assignment()
    c = a.circle
    steps = 100 if quick else c.steps
    data = CircleData.make(c.n_train, c.n_val, a.seed)
    grid, _ = data.grid(c.grid_resolution)
    inputs = {"x_train": data.x_train, "y_train": data.y_train, "x_val": data.x_val, "x_train_raw": data.x_train_raw,
              "x_val_raw": data.x_val_raw, "grid": data.standardize(grid), "grid_raw": grid}  # fmt: skip
    runs = [{"sigma": s, "glorot": False, "seed": seed, "raw": False, "grid": seed == c.seeds[0]}
            for s in c.sigma_grid for seed in c.seeds]  # fmt: skip
    runs += [{"sigma": 1.0, "glorot": True, "seed": seed, "raw": False, "grid": False} for seed in c.seeds]
    runs += [{"sigma": 1.0, "glorot": False, "seed": seed, "raw": True, "grid": False} for seed in c.seeds]
    params = {"runs": runs, "steps": steps, "lr": c.lr, "log_steps": log_schedule(steps),
              "val_steps": sorted({*range(0, steps + 1, max(steps // 20, 1)), steps})}  # fmt: skip
    module = _reference()
    t0 = time.perf_counter()
    _, loop = lab_tasks.circle_runs(module, {**params, "batched": False}, inputs)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    meta, batched = lab_tasks.circle_runs(module, params, inputs)
    ours = time.perf_counter() - t0
    assert meta["batched"], meta
    differing = [k for k in loop if not torch.equal(loop[k].nan_to_num(), batched[k].nan_to_num())]
    assert not differing, f"batched logits differ from the loop's: {differing[:3]}"
    return Row("sweep", baseline, ours, f"{len(runs)} runs x {steps} steps, identical logits")


BENCHMARKS: dict[str, Callable[[bool], Row]] = {"sweep": bench_sweep}


def write_markdown(rows: list[Row], path: Path, quick: bool) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `python bench/run.py` on {datetime.now(UTC):%Y-%m-%d} ({platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}){' with --quick' if quick else ''}. "
        "Baseline and ours are measured in the same run; ratio = baseline / ours.",
        "",
        "| name | baseline (s) | ours (s) | ratio | what |",
        "|---|---:|---:|---:|---|",
        *(f"| {r.name} | {r.baseline:.2f} | {r.ours:.2f} | {r.ratio:.1f}x | {r.what} |" for r in rows),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small budgets: a smoke run, not a record")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    rows = []
    print(f"{'name':<12}{'baseline':>10}{'ours':>10}{'ratio':>8}")
    for name in args.names or list(BENCHMARKS):
        row = BENCHMARKS[name](args.quick)
        rows.append(row)
        print(f"{row.name:<12}{row.baseline:>9.2f}s{row.ours:>9.2f}s{row.ratio:>7.1f}x  {row.what}")
    write_markdown(rows, args.out, args.quick)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
