"""Benchmarks of the grader's computations: the part 1 sweep."""

from __future__ import annotations

import time

import torch

from bench.common import Row, reference_module
from grader.assignment import load_assignment
from grader.checks.circle import analyse
from grader.data import CircleData
from grader.sandbox.reply import SandboxReply
from grader.session import Run, log_schedule
from grader.tasks import lab
from grader.tasks.local import captured_models


def _circle_analysis(a, params: dict, out: dict, data: CircleData) -> list:
    """The trusted side's own analysis (losses, regimes) of a circle_runs output."""
    a = a.model_copy(update={"circle": a.circle.model_copy(update={"steps": params["steps"]})})
    reply = SandboxReply(ok=True, meta={}, tensors={k: v.numpy() for k, v in out.items()}, failure=None,
                         log_tail="", wall_seconds=0.0)  # fmt: skip
    return analyse(Run("sweep", "circle_runs", params, reply), a, data.y_train, data.y_val, a.circle.grid_resolution)


def bench_sweep(quick: bool) -> Row:
    """Part 1's sweep of the reference solution (every sigma and seed, Glorot, raw inputs): the lab's loop of one
    model at a time against all runs as one vmapped computation. Float32 arithmetic in a different order: the
    losses must agree to float32 rounding where training is stable, and every run must land in the same regime."""
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
    module = reference_module()
    built = {}
    for run in runs:  # built as the sandbox's build task builds them (seeded), captured and rebuilt as in a grading
        run["key"] = f"circle.{run['sigma']}.s{run['seed']}"
        torch.manual_seed(run["seed"])
        built[run["key"]] = (module.circle_model(run["sigma"]), 2)
    models, model_params, model_inputs = captured_models(built)
    params = {"runs": runs, "steps": steps, "lr": c.lr, "log_steps": log_schedule(steps),
              "val_steps": sorted({*range(0, steps + 1, max(steps // 20, 1)), steps}), **model_params}  # fmt: skip
    inputs |= model_inputs
    t0 = time.perf_counter()
    _, loop = lab.circle_runs(models, {**params, "batched": False}, inputs)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    meta, batched = lab.circle_runs(models, params, inputs)
    ours = time.perf_counter() - t0
    assert meta["batched"], meta
    first = max(
        float(((a0 - b0).abs() / a0.abs().clamp(min=1)).max())
        for a0, b0 in ((loop[f"run{i}.train"][0], batched[f"run{i}.train"][0]) for i in range(len(runs)))
    )
    assert first < 1e-5, f"the untrained models' logits differ by {first:.1e} (relative): not float32 rounding"
    ref, ours_runs = _circle_analysis(a, params, loop, data), _circle_analysis(a, params, batched, data)
    moved = [i for i, (r, o) in enumerate(zip(ref, ours_runs, strict=True)) if r.regime != o.regime]
    assert not moved, f"runs {moved} change regime between the loop and the batched computation"
    rel = sorted(
        max(abs(x - y) / max(abs(x), 1e-3) for x, y in zip(r.train_loss, o.train_loss, strict=True))
        for r, o in zip(ref, ours_runs, strict=True)
    )
    median = rel[len(rel) // 2]
    what = (
        f"{len(runs)} runs x {steps} steps; same regime for every run; training losses within {median:.1e} "
        f"relative (median run), {rel[-1]:.1e} at worst"
    )
    return Row("sweep", baseline, ours, what)
