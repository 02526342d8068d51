"""Check 7: the four diagnostics of the makemore lecture for the MNIST models at init and after training, in eval
mode (dropout off, so that dropped values do not read as dead units); reported, not scored.

From raw data returned by the sandbox: activation and gradient histograms per layer with mean, std and the share
of dead ReLU units (never active on the batch), the weight gradient:data ratio, and the update:data ratio over
training (log10) to compare with the 1e-3 rule of thumb."""

from __future__ import annotations

import torch

from grader.assignment import Assignment
from grader.checks.base import CheckSpec, bad_reply_failure, not_run, run_failure
from grader.result import CheckResult, Series
from grader.session import BadReply, Run, Session

ID, TITLE = "training_diagnostics", "Training diagnostics (makemore)"
ABOUT = (
    "The four diagnostics of the makemore lecture for the image models at init and after training, taken in eval "
    "mode (the dropout model with dropout off): histograms of activations and "
    "of their gradients per layer (with the share of dead ReLU units), the ratio of each weight's gradient to "
    "its values, and the size of each update relative to the weights over training, where about 1e-3 "
    "(-3 in log10) is a healthy rule of thumb. Reported, not scored."
)
BINS = 50


def histogram(t: torch.Tensor) -> dict:
    lo, hi = float(t.min()), float(t.max())
    if hi <= lo:
        hi = lo + 1e-12
    counts = torch.histc(t.float(), bins=BINS, min=lo, max=hi)
    edges = torch.linspace(lo, hi, BINS + 1)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def layer_stats(run: Run, prefix: str, saturation: float | None = None) -> list[dict]:
    """Each hidden activation's statistics; with `saturation`, the share of |values| above it (tanh layers)."""
    stats = []
    for k in range(1, 1 + run.count(f"{prefix}.act", start=1)):
        act = run.tensor(f"{prefix}.act{k}", (None, None))
        entry = {
            "layer": k,
            "mean": float(act.mean()),
            "std": float(act.std()),
            "dead_percent": 100 * float((act == 0).all(0).double().mean()),
            "histogram": histogram(act),
        }
        if saturation is not None:
            entry["saturated_percent"] = 100 * float((act.abs() > saturation).double().mean())
        if run.has(f"{prefix}.actgrad{k}"):
            grad = run.tensor(f"{prefix}.actgrad{k}", tuple(act.shape))
            entry |= {
                "grad_mean": float(grad.mean()),
                "grad_std": float(grad.std()),
                "grad_histogram": histogram(grad),
            }
        stats.append(entry)
    return stats


def grad_data_ratios(run: Run, prefix: str) -> list[dict]:
    ratios = []
    for k in range(run.count(f"{prefix}.wgrad")):
        w = run.tensor(f"{prefix}.w{k}", (None, None))
        g = run.tensor(f"{prefix}.wgrad{k}", tuple(w.shape))
        ratios.append(
            {
                "layer": k,
                "shape": list(w.shape),
                "grad_std": float(g.std()),
                "data_std": float(w.std()),
                "ratio": float(g.std() / w.std().clamp(min=1e-30)),
            }
        )
    return ratios


def diagnostics(run: Run, model: str = "", saturation: float | None = None) -> tuple[dict, list[Series]]:
    """The four diagnostics of the run's model (or of its model `model`: keys `model.diag...`), at init and after
    training, and the update:data ratio over training as series."""
    metrics: dict = {}
    series: list[Series] = []
    key = f"{model}." if model else ""
    for when in ("init", "final"):
        prefix = f"{key}diag.{when}"
        metrics[when] = {"layers": layer_stats(run, prefix, saturation), "grad_data": grad_data_ratios(run, prefix)}
    ratios = run.tensor(f"{key}update_ratio", (None, None), finite=False)
    every = max(1, int(run.params.get("ratio_every", 1)))  # the trusted side's own request, not the child's word
    stride = max(1, ratios.shape[0] // 500)
    steps = [i * every for i in range(0, ratios.shape[0], stride)]
    for j in range(ratios.shape[1]):
        series.append(Series(name=f"update_ratio.w{j}", x=steps, y=ratios[::stride, j].tolist(), meta={"guide": -3.0}))
    metrics["update_ratio_final"] = ratios[-max(1, ratios.shape[0] // 10) :].mean(0).tolist() if len(ratios) else []
    return metrics, series


def check(session: Session, a: Assignment) -> CheckResult:
    metrics: dict = {}
    series: list[Series] = []
    notes = []
    for variant, dropout in (("without_dropout", False), ("with_dropout", True)):
        run = session.run("mnist_dropout" if dropout else "mnist_plain")
        failure = run_failure(run, "mnist_model(dropout)")
        if failure is not None:
            return not_run(ID, TITLE, 0.0, failure, f"mnist_model({dropout})")
        assert run is not None
        try:
            metrics[variant], s = diagnostics(run)
        except BadReply as e:
            return not_run(ID, TITLE, 0.0, bad_reply_failure(e), f"mnist_model({dropout})")
        series += [x.model_copy(update={"name": f"{variant}.{x.name}"}) for x in s]
        dead = {when: max((layer["dead_percent"] for layer in metrics[variant][when]["layers"]), default=0.0)
                for when in ("init", "final")}  # fmt: skip
        ratio = max(metrics[variant]["update_ratio_final"], default=float("nan"))
        notes.append(
            f"mnist_model({dropout}): at most {dead['init']:.1f}% dead ReLU units per layer at init and "
            f"{dead['final']:.1f}% after training; final update:data ratio up to 10^{ratio:.1f} (rule of thumb: "
            "about 10^-3)."
        )
    return CheckResult(
        id=ID,
        title=TITLE,
        status="passed",
        score=0.0,
        max_score=0.0,
        message=" ".join(notes),
        metrics=metrics,
        series=series,
    )


# it reads the dropout check's two MNIST runs, which record the diagnostics at init and after training
SPEC = CheckSpec(
    ID, TITLE, ("mnist_model",), check, about=ABOUT,
    figures=(
        ("mnist_model(False) at init: activations, gradients and gradient:data ratios.", "diagnostics",
         {"variant": "without_dropout", "when": "init"}),
        ("mnist_model(False) after training: the four diagnostics.", "diagnostics", {"variant": "without_dropout"}),
        ("mnist_model(True) at init, in eval mode (dropout off): activations, gradients and gradient:data ratios.",
         "diagnostics", {"variant": "with_dropout", "when": "init"}),
        ("mnist_model(True) after training, in eval mode: the four diagnostics.", "diagnostics",
         {"variant": "with_dropout"}),
    ),
)  # fmt: skip
