"""Check 3 (part 2): activation and gradient statistics of the untrained 20-layer ReLU net, judged against the
analytic expectation, and the student's weights matched to the init they actually implement.

With zero biases and ReLU, a Linear layer with fan_in n and weight variance v maps E[h^2] to E[z^2] = n v E[h^2],
and ReLU halves it: the RMS of the pre-activations grows by sqrt(n v / 2) per layer (x7.07 for N(0, 1) at n = 100,
x0.707 for Glorot, x1 for He). Backwards, the gradient's RMS grows by sqrt(n_out v / 2) per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from grader.assignment import Assignment
from grader.checks.base import CheckSpec, bad_reply_failure, item, not_run, number, run_failure, scored
from grader.data import circle_sample
from grader.result import CheckResult, Fact, Item, Series
from grader.session import BadReply, Made, Run, RunSpec, Session
from grader.tasks.lab import LAYER_STATS

ID, TITLE = "activation_stats", "Part 2: activation statistics of a deep net"
ABOUT = (
    "Part 2 looks at a 20-layer ReLU network before training. With zero biases, each layer multiplies the "
    "scale of its output by sqrt(fan_in * var(w) / 2): about 7.07 for N(0, 1) at width 100, so activations "
    "explode; 0.71 for Glorot, so they vanish slowly; and exactly 1 for He, which was derived for ReLU. "
    "Gradients follow the same rule backwards. The grader measures both on 2048 inputs and compares them "
    "with this expectation, and it matches your weights against known inits to name a mistake."
)
INITS = ("normal", "xavier", "kaiming")
INIT_NAMES = {"normal": "N(0, 1)", "xavier": "Glorot (Xavier)", "kaiming": "He (Kaiming)"}

# Weight std of well-known inits (and of common mistakes) as a function of (fan_in, fan_out).
CANDIDATES: dict[str, tuple[str, object]] = {
    "normal": ("N(0, 1)", lambda i, o: 1.0),
    "xavier": ("Glorot: var = 2 / (fan_in + fan_out)", lambda i, o: math.sqrt(2 / (i + o))),
    "kaiming": ("He: var = 2 / fan_in", lambda i, o: math.sqrt(2 / i)),
    "kaiming_fan_out": (
        "He with fan_out instead of fan_in: var = 2 / fan_out",
        lambda i, o: math.sqrt(2 / o),
    ),
    "lecun": (
        "LeCun instead of He: var = 1 / fan_in (missing the factor 2 for ReLU)",
        lambda i, o: math.sqrt(1 / i),
    ),
    "kaiming_variance_as_std": ("He's variance used as the std: std = 2 / fan_in", lambda i, o: 2 / i),
    "xavier_variance_as_std": (
        "Glorot's variance used as the std: std = 2 / (fan_in + fan_out)",
        lambda i, o: 2 / (i + o),
    ),
    "torch_default": (
        "PyTorch's default Linear init (kaiming_uniform_ with a = sqrt(5)): var = 1 / (3 fan_in)",
        lambda i, o: math.sqrt(1 / (3 * i)),
    ),
}
WEIGHT_TOLERANCE = 0.25  # |ln(measured / expected)| of a layer's weight std
HINT = (
    "Set each Linear layer's weights yourself with std = sqrt(variance): N(0, 1) uses std 1; Glorot uses "
    "var = 2 / (fan_in + fan_out); He uses var = 2 / fan_in, where fan_in = layer.in_features. Remember that "
    "nn.init.normal_(w, mean, std) takes the standard deviation, not the variance, and set the biases to 0."
)


class NotComparable(BadReply):
    """The deep net cannot be compared with the expectation at all (e.g. a layer without inputs); the message is
    shown to the student as it is."""


def expected_variance(init: str, fan_in: int, fan_out: int) -> float:
    return {"normal": 1.0, "xavier": 2 / (fan_in + fan_out), "kaiming": 2 / fan_in}[init]


def identify(shapes: list[tuple[int, int]], stds: list[float]) -> tuple[str, float]:
    """The known init whose per-layer std is closest in the worst layer (in log ratio), and that distance."""

    def distance(fn: object) -> float:
        return max(abs(math.log(max(s, 1e-30) / fn(i, o))) for (o, i), s in zip(shapes, stds, strict=True))  # type: ignore[operator]

    best = min(CANDIDATES, key=lambda k: distance(CANDIDATES[k][1]))
    return best, distance(CANDIDATES[best][1])


def slope(values: list[float]) -> float:
    """Least-squares slope of `values` against their index."""
    n = len(values)
    if n < 2:
        return 0.0
    xs = torch.arange(n, dtype=torch.float64)
    ys = torch.tensor(values, dtype=torch.float64)
    xc = xs - xs.mean()
    return float((xc * (ys - ys.mean())).sum() / (xc * xc).sum())


def rms(t: torch.Tensor) -> float:
    return float(t.pow(2).mean().sqrt())


def analyse(run: Run, init: str, x: torch.Tensor, cotangent: torch.Tensor) -> dict:
    n = x.shape[0]
    stats = run.tensor(f"{init}.stats", (None, len(LAYER_STATS)), finite=False)  # one row per layer
    layers = stats.shape[0]
    if layers < 3:
        raise BadReply(f"deep_model('{init}') ran {layers} Linear layers; the lab asks for 20")
    w = [run.tensor(f"{init}.w{k}", (None, None)) for k in range(layers)]
    biases = [run.tensor(f"{init}.b{k}") for k in range(layers) if run.has(f"{init}.b{k}")]
    if w[-1].shape[0] != 2 or not run.has(f"{init}.logits"):
        raise BadReply(f"deep_model('{init}') must output 2 logits per point")
    run.tensor(f"{init}.logits", (n, 2), finite=False)
    column = {name: stats[:, j].tolist() for j, name in enumerate(LAYER_STATS)}
    shapes = [(wk.shape[0], wk.shape[1]) for wk in w]  # (fan_out, fan_in)
    for k, (fan_out, fan_in) in enumerate(shapes):
        if fan_in == 0 or fan_out == 0:
            which = "inputs" if fan_in == 0 else "outputs"
            raise NotComparable(
                f"deep_model('{init}') has a layer with 0 {which}: its Linear layer {k + 1} of {layers} is "
                f"Linear({fan_in}, {fan_out}), so there is no fan_in or fan_out to scale its weights by and nothing "
                "to compare with the expectation. Build the lab's net: 2 -> 100 x 19 -> 2."
            )
    # Forward expectation: E[z_1^2] = v_1 * sum_j E[x_j^2]; E[z_k^2] = n_k v_k E[z_{k-1}^2] / 2.
    exp_sq: list[float] = []
    for k, (fan_out, fan_in) in enumerate(shapes):
        v = expected_variance(init, fan_in, fan_out)
        exp_sq.append(v * float(x.pow(2).sum(1).mean()) if k == 0 else fan_in * v * exp_sq[-1] / 2)
    exp_fwd = [math.sqrt(s) for s in exp_sq]
    # Backward expectation: the last gradient is the cotangent; E[dz_k^2] = n_out(k+1) v_(k+1) E[dz_(k+1)^2] / 2.
    exp_bwd = [0.0] * layers
    exp_bwd[-1] = rms(cotangent)
    for k in range(layers - 2, -1, -1):
        fan_out, fan_in = shapes[k + 1]
        exp_bwd[k] = math.sqrt(fan_out * expected_variance(init, fan_in, fan_out) * exp_bwd[k + 1] ** 2 / 2)
    fwd, bwd = column["rms"], column["grad_rms"]
    stds = [float(t.std()) for t in w]
    name, distance = identify(shapes, stds)
    return {
        "init": init,
        "layers": layers,
        "abs_mean": column["abs_mean"],
        "abs_std": column["abs_std"],
        "rms": fwd,
        "expected_rms": exp_fwd,
        "grad_abs_mean": column["grad_abs_mean"],
        "grad_abs_std": column["grad_abs_std"],
        "grad_rms": bwd,
        "expected_grad_rms": exp_bwd,
        "weight_std": stds,
        "weight_shapes": shapes,
        "identified_init": name if distance <= 0.2 else None,
        "max_abs_bias": max((float(b.abs().max()) for b in biases), default=0.0),
    }


def _log_ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        return math.inf
    return math.log(a / b)


def _exp(x: float) -> float:
    """exp without OverflowError (the growth of activations that float64 data can describe is unbounded)."""
    return math.exp(min(x, 700.0)) if not math.isnan(x) else math.nan


def judge(stats: dict, a: Assignment) -> list[str]:
    """Problems with the measured statistics (empty: matches the analytic expectation)."""
    core, edge = judge_parts(stats, a)
    return core + edge


def credit(stats: dict, a: Assignment) -> float:
    """The share of an init's points it earns: all when it matches the expectation, `deep.edge_credit` when only
    the first and output layers are off (He with fan_out instead of fan_in: fan_in = fan_out = 100 in the
    middle, so only those two layers differ), none when the scaling through the middle layers is wrong."""
    core, edge = judge_parts(stats, a)
    return 1.0 if not (core or edge) else a.deep.edge_credit if not core else 0.0


def judge_parts(stats: dict, a: Assignment) -> tuple[list[str], list[str]]:
    """Problems of the middle layers (how activations and gradients scale through the net) and of the first and
    output layers (their output and weight std), each as a sentence."""
    tol_layer, tol_growth = a.deep.layer_tolerance, a.deep.growth_tolerance
    fwd, exp, bwd, exp_b = stats["rms"], stats["expected_rms"], stats["grad_rms"], stats["expected_grad_rms"]
    problems: list[str] = []  # the middle layers
    edge: list[str] = []
    first = _log_ratio(fwd[0], exp[0])
    if abs(first) > tol_layer:
        edge.append(f"the first layer's output RMS is {fwd[0]:.3g}, expected about {exp[0]:.3g}")
    middle = [_log_ratio(f, e) for f, e in zip(fwd[1:-1], exp[1:-1], strict=True)]
    growth = slope(middle) if all(map(math.isfinite, middle)) else math.inf
    if abs(growth) > tol_growth:
        measured = _exp(slope([math.log(max(f, 1e-300)) for f in fwd[1:-1]]))
        expected = _exp(slope([math.log(max(e, 1e-300)) for e in exp[1:-1]]))
        problems.append(f"activations grow by x{measured:.3g} per layer, expected x{expected:.3g}")
    # Two output units give too noisy an activation ratio for the last layer: judge the edge layers by their
    # weights (about 200 of them each, so the std is known to a few percent).
    for k, label in ((0, "first"), (len(stats["weight_std"]) - 1, "output")):
        fan_out, fan_in = stats["weight_shapes"][k]
        expected_std = math.sqrt(expected_variance(stats["init"], fan_in, fan_out))
        if abs(_log_ratio(stats["weight_std"][k], expected_std)) > WEIGHT_TOLERANCE:
            edge.append(
                f"the {label} layer's weight std is {stats['weight_std'][k]:.3g}, expected "
                f"{expected_std:.3g} for fan_in {fan_in}, fan_out {fan_out}"
            )
    grad = [_log_ratio(b, e) for b, e in zip(bwd[1:-1], exp_b[1:-1], strict=True)]
    if not all(map(math.isfinite, grad)) or abs(slope(grad)) > tol_growth:
        problems.append("gradients do not grow or shrink through the layers as the expectation says")
    return problems, edge


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("deep")
    failure = run_failure(run, "deep_model(init)")
    if failure is not None:
        return not_run(ID, TITLE, a.max_points(ID), failure, "deep_model(init)")
    assert run is not None
    items: list[Item] = []
    metrics: dict = {}
    series: list[Series] = []
    failed = run.params.get("failed", {})
    for init in INITS:
        if f"deep.{init}" in failed:
            detail = f"deep_model('{init}') could not be built: {failed[f'deep.{init}']}"
            items.append(item(a, ID, init, INIT_NAMES[init], False, detail))
            continue
        try:
            data = deep_inputs(session)
            stats = analyse(run, init, data.x.double(), data.cotangent.double())
        except NotComparable as e:
            items.append(item(a, ID, init, INIT_NAMES[init], False, str(e)))
            continue
        except BadReply as e:
            items.append(
                item(
                    a,
                    ID,
                    init,
                    INIT_NAMES[init],
                    False,
                    f"deep_model('{init}'): {bad_reply_failure(e).message}",
                )
            )
            continue
        metrics[init] = stats
        depth = list(range(1, stats["layers"] + 1))
        for key in (
            "abs_mean",
            "abs_std",
            "rms",
            "expected_rms",
            "grad_abs_mean",
            "grad_abs_std",
            "grad_rms",
            "expected_grad_rms",
        ):
            series.append(Series(name=f"{init}.{key}", x=depth, y=stats[key]))
        problems, share = judge(stats, a), credit(stats, a)
        result = item(a, ID, init, INIT_NAMES[init], not problems, _detail(init, stats, problems))
        if 0 < share < 1:  # partly right: the middle layers scale as they should
            points = round(result.max_points * share, 2)
            detail = (f"{result.detail} The middle layers scale activations and gradients as they should, so this "
                      f"init earns {points:g} of its {result.max_points:g} points.")  # fmt: skip
            result = result.model_copy(update={"points": points, "detail": detail})
        items.append(result)
    return scored(
        ID,
        TITLE,
        items,
        hint=HINT,
        metrics=metrics,
        series=series,
        passed_message="All three inits scale activations and gradients as the analytic expectation says.",
    )


def _detail(init: str, stats: dict, problems: list[str]) -> str:
    found = stats["identified_init"]
    if not problems:
        return f"deep_model('{init}') matches the expectation over {stats['layers']} layers."
    said = "; ".join(problems)
    if found is None:
        named = (
            "Its weights match no init the grader knows (std per layer: "
            + ", ".join(f"{s:.3g}" for s in stats["weight_std"][:3])
            + ", ...)."
        )
    elif found == init:
        named = "Its weight std matches the formula, so look at the forward pass (ReLU after every hidden layer?)."
    else:
        named = f"Its weights look like {CANDIDATES[found][0]}."
    bias = f" Biases should be 0 (largest is {stats['max_abs_bias']:.3g})." if stats["max_abs_bias"] > 0 else ""
    return f"deep_model('{init}') should use {CANDIDATES[init][0]}, but {said}. {named}{bias}"


# -- the unit: the models it builds, its run, its facts and figures ---------------------------------------------
@dataclass(frozen=True)
class DeepInputs:
    x: torch.Tensor  # (n_samples, 2) circle points, standardized like the training inputs
    y: torch.Tensor  # their labels (the loss at init of the untrained nets)
    cotangent: torch.Tensor  # (n_samples, 2): what the backward pass sends into the output


def deep_inputs(session: Session) -> DeepInputs:
    """The large sample Part 2 runs through the untrained nets, made once per grading from the assignment."""

    def make() -> DeepInputs:
        deep = session.assignment.deep
        x, y = circle_sample(deep.n_samples, deep.seed + 7)
        cotangent = torch.randn(deep.n_samples, 2, generator=torch.Generator().manual_seed(deep.seed))
        return DeepInputs(session.circle_data.standardize(x), y, cotangent)

    return session.memo("deep:inputs", make)  # type: ignore[return-value]


def models(a: Assignment, mnist: bool) -> list[dict]:
    return [{"key": f"deep.{i}", "factory": "deep_model", "args": [i], "seed": a.seed, "input": 2} for i in INITS]


def _deep(session: Session) -> Made:
    data = deep_inputs(session)
    params = {"inits": list(INITS), "seed": session.assignment.seed}
    return params, {"x": data.x, "cotangent": data.cotangent}, [f"deep.{i}" for i in INITS]


def facts(check: CheckResult) -> list[Fact]:
    out: list[Fact] = []
    for init in INITS:
        s = check.metrics.get(init)
        if not s:
            continue
        rms, exp = s["rms"], s["expected_rms"]
        mid = len(rms) // 2
        name = INIT_NAMES[init]
        out.append(Fact(f"{name}: growth per layer (middle)", number(exp[mid] / exp[mid - 1]),
                        number(rms[mid] / rms[mid - 1]) if rms[mid - 1] else "n/a"))  # fmt: skip
        found = s.get("identified_init")  # in words, as the verdict says it (ids stay in the result's data)
        out.append(Fact(f"{name}: weights look like", CANDIDATES[init][0],
                        CANDIDATES[found][0] if found in CANDIDATES else "none of the known inits"))  # fmt: skip
    return out


SPEC = CheckSpec(
    ID, TITLE, ("deep_model",), check, about=ABOUT, models=models,
    runs=(RunSpec("deep", "deep_stats", _deep, needs=("deep_model",), each=True),),
    facts=facts,
    figures=(
        ("Measured RMS per layer against the analytic expectation (dotted), forward and backward.", "activations", {}),
        ("Mean and std of |activation| per layer, as the lab asks.", "activation_abs", {}),
    ),
)  # fmt: skip
