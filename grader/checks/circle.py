"""Part 1 on the trusted side: losses, accuracies and the regime of every circle training run.

The regime rule (documented in docs/checks.md), for one run with n classes and L* = ln(n):
- "diverged": a loss or logit became NaN or infinite;
- the run "reaches a good solution" when its final validation accuracy is at least `good_accuracy`;
- it "escapes" at the first logged step where the training loss is below `escape_fraction` * L*;
- good solution + escape after `slow_start_steps`: "small" (slow start, still a good solution);
- good solution otherwise: "good";
- no good solution, a loss at init above `overconfident_factor` * L*, and still converging (final validation
  accuracy at least `big_min_accuracy`, a final training loss below the loss at init): "big" (disturbed start,
  not recovered fully);
- the same disturbed start without that convergence: "chaotic" (at chance level: too big even for "big");
- no good solution and never escaped: "stuck" (too small to train in the budget);
- otherwise: "poor" (trained, but to a poor solution: an unlucky seed or dead units).
A sigma's regime is the one most of its seeds share.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from grader.assignment import Assignment
from grader.checks.base import accuracy, cross_entropy
from grader.session import Run, Session, chance_loss, log_schedule

REGIMES = ("stuck", "small", "good", "big", "chaotic", "poor", "diverged")
REGIME_TEXT = {
    "stuck": "never left the chance level (too small to train in the budget)",
    "small": "started slowly but reached a good solution",
    "good": "trained quickly to a good solution",
    "big": "started overconfident and converged without recovering a good solution",
    "chaotic": "started overconfident and never converged (near chance level): larger than the lab's 'big'",
    "poor": "trained to a poor solution",
    "diverged": "diverged (NaN or infinite values)",
}


@dataclass
class CircleRun:
    spec: dict
    steps: list[int]  # logged training steps
    train_loss: list[float]
    val_steps: list[int]
    val_loss: list[float]
    val_acc: list[float]
    loss_at_init: float  # on the validation set, before any update
    escape_step: int | None
    regime: str
    grid_prob: torch.Tensor | None  # P(class 1) on the decision grid, (resolution, resolution)

    @property
    def final_val_acc(self) -> float:
        return self.val_acc[-1]

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]


def classify(
    a: Assignment,
    loss_at_init: float,
    train_loss: list[float],
    steps: list[int],
    final_acc: float,
    escape_step: int | None,
) -> str:
    r = a.circle.regimes
    chance = chance_loss(2)
    if not all(map(torch.isfinite, torch.tensor([loss_at_init, *train_loss]))):
        return "diverged"
    if final_acc >= r.good_accuracy:
        return "small" if escape_step is None or escape_step > r.slow_start_steps else "good"
    if loss_at_init > r.overconfident_factor * chance:
        falling = bool(train_loss) and train_loss[-1] < loss_at_init
        return "big" if final_acc >= r.big_min_accuracy and falling else "chaotic"
    return "stuck" if escape_step is None else "poor"


def analyse(run: Run, a: Assignment, y_train: torch.Tensor, y_val: torch.Tensor, resolution: int) -> list[CircleRun]:
    """Turn a circle_runs reply into per-run losses and regimes, all computed here from the returned logits."""
    specs = run.params["runs"]
    steps = log_schedule(a.circle.steps)
    val_steps = sorted({*range(0, a.circle.steps + 1, max(a.circle.steps // 20, 1)), a.circle.steps})
    n_train, n_val = len(y_train), len(y_val)
    chance = chance_loss(2)
    out = []
    for i, spec in enumerate(specs):
        train = run.tensor(f"run{i}.train", (len(steps), n_train, 2), finite=False)
        val = run.tensor(f"run{i}.val", (len(val_steps), n_val, 2), finite=False)
        train_loss = [cross_entropy(t, y_train) for t in train]
        val_loss = [cross_entropy(v, y_val) for v in val]
        val_acc = [accuracy(v, y_val) for v in val]
        escape = next(
            (s for s, loss in zip(steps, train_loss, strict=True) if loss < a.circle.regimes.escape_fraction * chance),
            None,
        )
        regime = classify(a, val_loss[0], train_loss, steps, val_acc[-1], escape)
        grid = None
        if spec.get("grid"):
            g = run.tensor(f"run{i}.grid", (resolution * resolution, 2), finite=False)
            grid = torch.softmax(torch.nan_to_num(g), dim=1)[:, 1].reshape(resolution, resolution)
        out.append(CircleRun(spec, steps, train_loss, val_steps, val_loss, val_acc, val_loss[0], escape, regime, grid))
    return out


def circle_runs(session: Session, name: str) -> list[CircleRun]:
    """The analysed runs of one circle_runs task, computed once for all the checks that read them."""

    def compute() -> list[CircleRun]:
        run = session.run(name)
        assert run is not None and run.failure is None
        d = session.circle_data
        return analyse(run, session.assignment, d.y_train, d.y_val, session.assignment.circle.grid_resolution)

    return session.memo(f"circle:{name}", compute)  # type: ignore[return-value]


def majority(runs: list[CircleRun]) -> tuple[str, Counter]:
    counts = Counter(r.regime for r in runs)
    top = max(REGIMES, key=lambda reg: (counts[reg], -REGIMES.index(reg)))
    return top, counts


def median(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=torch.float64).nanmedian()) if values else float("nan")


# -- the circle runs' requests (shared by the checks that start them) -------------------------------------------
def decision_grid(session: Session) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    """The points of the decision-boundary plots (raw coordinates) and their extent."""
    d, resolution = session.circle_data, session.assignment.circle.grid_resolution
    return session.memo("circle:grid", lambda: d.grid(resolution))  # type: ignore[return-value]


def circle_inputs(session: Session) -> dict[str, torch.Tensor]:
    d = session.circle_data
    grid, _ = decision_grid(session)
    return {
        "x_train": d.x_train, "y_train": d.y_train, "x_val": d.x_val,
        "x_train_raw": d.x_train_raw, "x_val_raw": d.x_val_raw,
        "grid": d.standardize(grid), "grid_raw": grid,
    }  # fmt: skip


def circle_params(a: Assignment, runs: list[dict]) -> dict:
    """The circle_runs task's parameters for run specs {sigma, glorot, seed, raw, grid, key, and optional label,
    scale and lr}: the lab's full-batch SGD."""
    c = a.circle
    return {
        "runs": runs, "steps": c.steps, "lr": c.lr, "log_steps": log_schedule(c.steps),
        "val_steps": sorted({*range(0, c.steps + 1, max(c.steps // 20, 1)), c.steps}),
    }  # fmt: skip


def circle_model_request(key: str, seed: int, *, args: list | None = None, label: str | None = None) -> dict:
    """A build request for circle_model: with `args` (a sigma or None), or with the label of a SIGMAS value."""
    request = {"key": key, "factory": "circle_model", "seed": seed, "input": 2}
    return request | ({"sigma_label": label} if label is not None else {"args": args})
