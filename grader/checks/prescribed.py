"""What the lab prescribes for each model, read from its captured graph and its weights (trusted side).

The models are rebuilt from the build task's graphs (grader.graph.rebuild) in the grading process: they run only
whitelisted torch operations, so measuring them here runs no student code. Structure is checked by behaviour on
a random batch, however the forward is written: the first linear unit gets the input, each next unit gets the
ReLU of the previous unit's output (in eval mode), and the model returns the last unit's output as it is (in
both modes: dropout or softmax on the logits is a fault). Inits are checked on the weights: the std of each
layer's weights against the formula (pooled over seeds where there are several), biases exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grader.graph.rebuild import GraphModel, traced
from grader.graph.schema import GraphError, validate_graph
from grader.session import Session

SOFTMAX_OPS = {"F.softmax", "torch.softmax", "Tensor.softmax", "F.log_softmax", "torch.log_softmax",
               "Tensor.log_softmax"}  # fmt: skip
SIGMOID_OPS = {"F.sigmoid", "torch.sigmoid", "Tensor.sigmoid"}
RELU_OPS = {"F.relu", "torch.relu", "Tensor.relu", "Tensor.clamp", "torch.clamp", "Tensor.clamp_min",
            "torch.clamp_min", "F.threshold"}  # fmt: skip


class Unbuilt(Exception):
    """The model is not there to inspect (its build failed); the failing build is reported elsewhere."""


def model(session: Session, key: str) -> GraphModel:
    """A fresh rebuilt model of the build task's `key` (raises Unbuilt when it was not built)."""
    built = session.built
    if key not in built.graphs:
        raise Unbuilt(key)
    graph = validate_graph(built.graphs[key])
    tensors = {name: torch.from_numpy(array.copy()) for name, array in built.tensors[key].items()}
    try:
        return GraphModel(graph, tensors)
    except GraphError as e:
        raise Unbuilt(f"{key}: {e}") from None


@dataclass
class Structure:
    """The layers a model runs, as measured: weight shapes (out, in) and what is wrong with the wiring."""

    shapes: list[tuple[int, int]]
    faults: list[str]


def structure(m: GraphModel, width: int, shown: str, seed: int = 0, x: torch.Tensor | None = None) -> Structure:
    """Run the model on a batch (random, or `x`: real inputs, so that a model that treats the task's data
    differently shows it) in eval and train mode and describe how its linear units are wired."""
    if x is None:
        x = torch.randn(64, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    faults: list[str] = []
    units = m.units(training=False)
    shapes = [tuple(m.weight(u).shape) for u in units]
    for u in units:
        if m.kind(u.weight) != "parameter":
            faults.append(
                f"{shown}: the weight {u.weight} is a {m.kind(u.weight)}, not an nn.Parameter, so training cannot "
                "change it. Register weights as parameters (nn.Linear does)."
            )
            break
    m.eval()
    with torch.no_grad(), traced(m) as trace:
        out = m(x)
    if not trace.units:
        return Structure([], [f"{shown}: its forward runs no linear layer."])
    first = trace.inputs[0]
    if not scaled_copy(first, x):  # scaled: dropout as in the paper multiplies by 1 - p at test time
        faults.append(f"{shown}: its first layer does not get the input as it is.")
    for k in range(1, len(trace.units)):
        before, got = trace.outputs[k - 1], trace.inputs[k]
        if got.shape != before.shape:
            faults.append(f"{shown}: layer {k + 1} does not get layer {k}'s output.")
            break
        if not scaled_copy(got, torch.relu(before)):
            if torch.allclose(got, before, atol=1e-6, rtol=1e-5):
                what = "nothing"
            elif torch.allclose(got, torch.tanh(before), atol=1e-6, rtol=1e-5):
                what = "tanh"
            elif torch.allclose(got, torch.sigmoid(before), atol=1e-6, rtol=1e-5):
                what = "a sigmoid"
            else:
                what = "something other than a ReLU"
            faults.append(f"{shown}: between layer {k} and layer {k + 1} it applies {what}; the lab asks for ReLU.")
            break
    last = trace.outputs[-1]
    if out.numel() != last.numel() or not torch.allclose(out.reshape(last.shape), last, atol=1e-6, rtol=1e-5):
        faults.append(f"{shown}: {_after_last(m, False)}")
    else:
        m.train()
        torch.manual_seed(seed)
        with torch.no_grad(), traced(m) as trace:
            out = m(x)
        m.eval()
        last = trace.outputs[-1] if trace.outputs else out
        if out.numel() != last.numel() or not torch.allclose(out.reshape(last.shape), last, atol=1e-6, rtol=1e-5):
            faults.append(
                f"{shown}: in train mode it changes the last layer's output ({_after_last(m, True)}); dropout "
                "belongs before a layer, never on the logits."
            )
    return Structure(shapes, faults)  # type: ignore[arg-type]


def scaled_copy(got: torch.Tensor, ref: torch.Tensor) -> bool:
    """Whether `got` is `ref` times one factor in (0, 1] (1: the same values)."""
    if got.shape != ref.shape:
        return False
    live = ref.abs() > 1e-6
    scale = float((got[live] / ref[live]).median()) if live.any() else 1.0
    return 0 < scale <= 1 + 1e-4 and torch.allclose(got, ref * scale, atol=1e-6, rtol=1e-5)


def _after_last(m: GraphModel, training: bool) -> str:
    names = m.ops(training)
    tail = names[len(names) - 1 - names[::-1].index("linear") + 1 :] if "linear" in names else names
    if any(op in SOFTMAX_OPS for op in tail):
        return ("it returns softmax probabilities instead of logits. Return the last Linear layer's output: the "
                "cross-entropy loss applies the softmax itself.")  # fmt: skip
    if any(op in SIGMOID_OPS for op in tail):
        return "it applies a sigmoid to the logits. Return the last Linear layer's output as it is."
    if any(op in RELU_OPS for op in tail):
        return "it applies a ReLU to the logits, so they cannot be negative. No activation after the last layer."
    if training:
        return "a random operation acts after the last layer"
    shown = ", ".join(dict.fromkeys(op for op in tail if op != "linear")) or "an operation"
    return f"it changes the last layer's output ({shown[:200]}). Return the last Linear layer's output as it is."


@dataclass
class InitStats:
    std: float  # pooled std of the weights
    bias_max: float  # largest |bias|
    n: int


def init_stats(models: list[GraphModel], layer: int | None = None) -> InitStats:
    """Pooled weight std (all units, or one) and the largest |bias| over several models of one build."""
    weights, biases = [], []
    for m in models:
        units = m.units(training=False)
        chosen = units if layer is None else [units[layer]]
        for u in chosen:
            weights.append(m.weight(u).detach().double().flatten())
            b = m.bias(u)
            if b is not None:
                biases.append(b.detach().double().flatten())
    w = torch.cat(weights)
    bias_max = float(torch.cat(biases).abs().max()) if biases else 0.0
    std = float(w.pow(2).mean().sqrt())  # about 0 mean: the RMS is the std of N(0, sigma)
    return InitStats(std, bias_max, w.numel())


def std_matches(measured: float, expected: float, n: int, slack: float = 0.1) -> bool:
    """Whether a weight RMS over n values matches an expected std: within 4 standard errors of log(std)
    (1 / sqrt(2n)) plus `slack` in log units."""
    if not (measured > 0 and expected > 0 and math.isfinite(measured)):
        return False
    return abs(math.log(measured / expected)) <= 4 / math.sqrt(2 * max(n, 1)) + slack


def sigma_fault(session: Session, prefix: str, sigma: float, shown: str, biases: bool = True) -> str | None:
    """Why the circle models `prefix`.s<seed> are not N(0, sigma) weights (with zero biases), or None."""
    try:
        models = [model(session, f"{prefix}.s{s}") for s in session.assignment.circle.seeds]
    except Unbuilt:
        return None  # the build's own failure is reported by the checks that run the model
    stats = init_stats(models)
    if biases and stats.bias_max > 1e-8:
        return f"{shown} has biases up to {stats.bias_max:.3g}; the lab asks for zero biases (nn.init.zeros_)."
    if std_matches(stats.std, sigma, stats.n):
        return None
    if sigma > 0 and std_matches(stats.std, math.sqrt(sigma), stats.n):
        why = "sigma is used as the variance; it is the standard deviation: N(0, sigma) has std sigma"
    else:
        why = "its weights do not follow N(0, sigma): it must use the sigma it is given"
    return f"{shown} has weights of std {stats.std:.3g} where sigma = {sigma:g}: {why}."


def circle_faults(session: Session) -> list[str]:
    """What is wrong with circle_model's layers, output or biases (memoized; [] when it cannot be built)."""

    def compute() -> list[str]:
        c = session.assignment.circle
        try:
            m = model(session, f"circle.g0.s{c.seeds[0]}")
        except Unbuilt:
            return []
        faults = structure(m, 2, f"circle_model({c.sigma_grid[0]:g})").faults
        stats = init_stats([m])
        if stats.bias_max > 1e-8:
            faults.append(f"circle_model({c.sigma_grid[0]:g}) has biases up to {stats.bias_max:.3g}; the lab asks "
                          "for zero biases (nn.init.zeros_).")  # fmt: skip
        return faults

    return session.memo("prescribed:circle", compute)  # type: ignore[return-value]
