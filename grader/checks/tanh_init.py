"""makemore's tanh network. tanh_model(False) is makemore's MLP on the lab's images (784 -> 100 x 5 -> 10, tanh
after each hidden layer) with Kaiming's gain for tanh, std (5/3) / sqrt(fan_in); tanh_model(True) puts a batch
norm between each hidden Linear and its tanh, and that Linear has no bias (the batch mean subtracts it).

The gain is read from the built weights, the saturation from the rebuilt plain model at init on standardized
images, and which hidden layers feed a batch norm from behaviour: in train mode, a batch norm subtracts the batch
mean of its input, so adding a constant per unit to a Linear's output (what a bias does) leaves the next layer's
input unchanged, and a bias there gets zero gradient. makemore's four diagnostics of both models, at init and
after a short training, are reported."""

from __future__ import annotations

import math

from grader.assignment import Assignment
from grader.checks.base import CheckSpec, bad_reply_failure, item, listed, not_run, run_failure, scored
from grader.checks.prescribed import Unbuilt, model
from grader.checks.training_diagnostics import diagnostics
from grader.result import CheckResult, Fact, Failure, Item, Series
from grader.session import BadReply, Made, Run, RunSpec, Session

ID, TITLE = "tanh_init", "Tanh network: Kaiming gain 5/3 and BatchNorm (makemore)"
ABOUT = (
    "makemore's MLP with tanh, on the lab's images: 784 -> 100 x 5 -> 10. tanh squashes its input, so a weight "
    "std of 1/sqrt(fan_in) shrinks the activations a little at every layer; Kaiming's gain for tanh, 5/3, "
    "makes up for it (std (5/3)/sqrt(fan_in)). Too large an init saturates the units (|tanh| near 1, where its "
    "gradient 1 - tanh^2 vanishes), too small a one lets the activations fade towards 0 with depth. The grader "
    "measures, at init on 512 standardized images, the share of saturated values (|tanh| > 0.97) and the std of "
    "each hidden layer's activations. The first layer is not scored on saturation: on standardized images its "
    "pre-activations have std about 5/3 even with the right gain, so about 20% of its values are saturated. "
    "BatchNorm makes a network much less sensitive to its init: each hidden Linear's output is normalized over "
    "the batch before the tanh. The batch norm subtracts the batch mean, so a bias added before it cancels out "
    "and its gradient is zero: it never learns, which is why makemore builds Linear(bias=False) -> BatchNorm1d "
    "-> Tanh. The grader finds the layers that feed a batch norm from that very fact: in train mode, adding a "
    "constant per unit to their output leaves the next layer's input unchanged. The figures show makemore's four "
    "diagnostics for both models at init and after a short training (SGD, batch 32, lr 0.1), in train mode as in "
    "makemore."
)
HINT = (
    "tanh_model(False): nn.Linear layers 784 -> 100 -> 100 -> 100 -> 100 -> 100 -> 10 with tanh after each hidden "
    "layer, the hidden weights from nn.init.kaiming_normal_(w, nonlinearity='tanh') (std (5/3)/sqrt(fan_in)); "
    "tanh_model(True): each hidden layer nn.Linear(..., bias=False) -> nn.BatchNorm1d(100) -> nn.Tanh()."
)
GAIN = 5 / 3
SHAPES = [(100, 784)] + [(100, 100)] * 4 + [(10, 100)]
KEYS = {"plain": "tanh.plain", "bn": "tanh.bn"}
SHOWN = {"plain": "tanh_model(False)", "bn": "tanh_model(True)"}


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return " -> ".join([str(shapes[0][1]), *(str(s[0]) for s in shapes)]) if shapes else "no layers"


def mistakes(fan_in: int, fan_out: int) -> dict[str, float]:
    """What a layer's std x sqrt(fan_in) reads for the common mistakes."""
    named = {
        "gain 1: Kaiming without the tanh gain, std 1/sqrt(fan_in)": 1.0,
        "the ReLU gain sqrt(2)": math.sqrt(2),
        "PyTorch's default nn.Linear init (std 1/sqrt(3 fan_in))": 1 / math.sqrt(3),
        "N(0, 1) weights": math.sqrt(fan_in),
        "the variance (5/3)^2/fan_in used as the std": GAIN**2 / math.sqrt(fan_in),
    }
    if fan_in != fan_out:
        named["fan_out instead of fan_in"] = GAIN * math.sqrt(fan_in / fan_out)
        named["Glorot with the tanh gain"] = GAIN * math.sqrt(2 * fan_in / (fan_in + fan_out))
    return named


def gain_item(session: Session, a: Assignment) -> tuple[Item, dict]:
    """Every hidden layer of tanh_model(False): weight std x sqrt(fan_in) within `gain_tolerance` of 5/3."""
    title, tol = "tanh_model(False): hidden weights with std (5/3) / sqrt(fan_in)", a.tanh.gain_tolerance
    try:
        m = model(session, KEYS["plain"])
    except Unbuilt:
        return item(a, ID, "gain", title, False, "tanh_model(False) could not be built, so its init could not be "
                    "checked.")  # fmt: skip
    weights = [m.weight(u).detach().double() for u in m.units(training=False)]
    shapes = [tuple(w.shape) for w in weights]
    layers = []
    for k, w in enumerate(weights[:-1]):  # the output layer is free (makemore scales it down)
        fan_out, fan_in = w.shape
        gain = float(w.pow(2).mean().sqrt()) * math.sqrt(fan_in) if w.numel() else float("nan")
        ok = math.isfinite(gain) and abs(gain / GAIN - 1) <= tol
        why = None if ok else next((n for n, g in mistakes(fan_in, fan_out).items() if abs(gain / g - 1) <= tol), None)
        layers.append({"layer": k + 1, "fan_in": fan_in, "gain": gain, "ok": ok, "mistake": why})
    metrics = {"layers": layers, "shapes": [list(s) for s in shapes], "tolerance": tol,
               "saturation_max": a.tanh.saturation_max, "std_min": a.tanh.std_min}  # fmt: skip
    problems = []
    if shapes != SHAPES:
        problems.append(f"tanh_model(False) is {_shapes(shapes)}; makemore's network here is 784 -> 100 -> 100 -> "
                        "100 -> 100 -> 100 -> 10.")  # fmt: skip
    wrong = [x for x in layers if not x["ok"]]
    if wrong:
        named = {x["mistake"] for x in wrong}
        if len(named) == 1 and None not in named:  # one mistake in every wrong layer: named once
            told = [f"layer {x['layer']}: {x['gain']:.3g}" for x in wrong]
            what = f"{listed(told)}, which is {named.pop()}"
        else:
            what = listed([f"layer {x['layer']}: {x['gain']:.3g}" + (f" ({x['mistake']})" if x["mistake"] else "")
                           for x in wrong])  # fmt: skip
        problems.append(
            f"The weight std x sqrt(fan_in) of tanh_model(False)'s hidden layers should be Kaiming's gain for tanh, "
            f"5/3 = 1.67 (within {tol:.0%}); measured {what}. Use nn.init.kaiming_normal_(w, nonlinearity='tanh') "
            "or randn(fan_in, fan_out) * (5/3) / fan_in**0.5."
        )
    measured = ", ".join(f"{x['gain']:.3g}" for x in layers)
    return item(a, ID, "gain", title, not problems, " ".join(problems) or (
        f"Every hidden layer has weight std x sqrt(fan_in) = 5/3 within {tol:.0%} (measured {measured})."
    )), metrics  # fmt: skip


def saturation_item(run: Run, a: Assignment, layers: list[dict]) -> Item:
    """tanh_model(False) at init: hidden layers 2.. saturated below `saturation_max`, the last one's activations
    with std at least `std_min`, and tanh between its layers."""
    title, t = "tanh_model(False) at init: neither saturated nor vanishing", a.tanh
    between = run.meta_dict(KEYS["plain"]).get("tanh_between")
    if isinstance(between, list) and not all(b is True for b in between):
        k = next(i for i, b in enumerate(between) if b is not True) + 1
        return item(a, ID, "saturation", title, False, f"tanh_model(False) does not apply tanh between layer {k} "
                    f"and layer {k + 1}; makemore's network has tanh after each hidden layer.")  # fmt: skip
    if len(layers) < 2:
        return item(a, ID, "saturation", title, False, f"tanh_model(False) has {len(layers)} hidden layer(s); "
                    "makemore's network has 5.")  # fmt: skip
    shares = [x["saturated_percent"] / 100 for x in layers]
    later = {x["layer"]: s for x, s in zip(layers[1:], shares[1:], strict=True) if s > t.saturation_max}
    last = layers[-1]["std"]
    measured = ", ".join(f"layer {x['layer']}: {s:.0%} (std {x['std']:.2f})" for x, s in zip(layers, shares,
                                                                                        strict=True))  # fmt: skip
    problems = []
    if later:
        problems.append(
            f"At init, tanh_model(False)'s hidden layers are saturated (|tanh| > {t.saturation_level:g}): "
            f"{listed([f'{v:.0%} in layer {k}' for k, v in later.items()])}, above {t.saturation_max:.0%}; their "
            "gradient 1 - tanh^2 is near 0, so they barely learn. The weights are too large: use the gain 5/3."
        )
    if not math.isfinite(last) or last < t.std_min:
        problems.append(
            f"At init, the activations of tanh_model(False) fade with depth: the last hidden layer's std is "
            f"{last:.3g} (at least {t.std_min:g} expected). The weights are too small: use the gain 5/3."
        )
    return item(a, ID, "saturation", title, not problems, " ".join(problems) + f" Measured: {measured}." if problems
                else f"Layers 2 to {layers[-1]['layer']} are at most {max(shares[1:]):.0%} saturated and the last "
                f"hidden layer's std is {last:.2f} ({measured}; layer 1 is not scored).")  # fmt: skip


def batchnorm_layers(run: Run, a: Assignment) -> list[dict]:
    """Each hidden linear unit of tanh_model(True): whether its output feeds a batch norm (a random constant per
    unit added to its output changes the next unit's input by rounding only), its bias and the gradient it got."""
    units = run.meta_dict(KEYS["bn"]).get("units")
    if not isinstance(units, list) or not all(isinstance(u, list) and len(u) == 2 for u in units):
        raise BadReply("tanh_model(True) has no valid list of linear units")
    layers = []
    for k, (weight, bias) in enumerate(units[:-1]):
        shift = run.tensor(f"{KEYS['bn']}.shift{k}", (2,), finite=False) if run.has(f"{KEYS['bn']}.shift{k}") else None
        ratio = float("inf") if shift is None or not shift[1] > 0 else float(shift[0] / shift[1])
        ratio = ratio if math.isfinite(ratio) else float("inf")
        grad = run.tensor(f"{KEYS['bn']}.biasgrad{k}") if run.has(f"{KEYS['bn']}.biasgrad{k}") else None
        layers.append({
            "layer": k + 1, "weight": str(weight)[:100], "bias": None if bias is None else str(bias)[:100],
            "shift_ratio": ratio, "batchnorm": ratio <= a.tanh.shift_max,
            "bias_grad_max": None if grad is None else float(grad.abs().max()),
        })  # fmt: skip
    return layers


def bias_item(a: Assignment, layers: list[dict]) -> Item:
    title = "tanh_model(True): Linear(bias=False) -> BatchNorm1d -> Tanh"
    normed = [x for x in layers if x["batchnorm"]]
    if not normed:
        return item(a, ID, "bias_before_batchnorm", title, False, (
            "tanh_model(True) normalizes no hidden layer's output over the batch in train mode: it has no batch norm "
            "after its hidden Linear layers. Put nn.BatchNorm1d(100) between each hidden Linear and its tanh."
        ))  # fmt: skip
    problems = []
    missing = [str(x["layer"]) for x in layers if not x["batchnorm"]]
    if missing:
        problems.append(f"tanh_model(True) has no batch norm after hidden layer(s) {listed(missing)}; each hidden "
                        "Linear's output goes through nn.BatchNorm1d(100) before the tanh.")  # fmt: skip
    biased = [x for x in normed if x["bias"] is not None]
    if biased:
        grads = [g for x in biased if (g := x["bias_grad_max"]) is not None]
        problems.append(
            f"tanh_model(True) adds a bias before its batch norm ({listed([x['bias'] for x in biased])}): the batch "
            "norm subtracts the batch mean, which removes the bias, so its gradient is zero and it never learns"
            + (f" (measured: |gradient| at most {max(grads):.1g})" if grads else "")
            + ". Use nn.Linear(..., bias=False) before a BatchNorm1d, as makemore does."
        )
    return item(a, ID, "bias_before_batchnorm", title, not problems, " ".join(problems) or (
        f"Each of the {len(normed)} hidden Linear layers feeds a batch norm and adds no bias (a random bias there "
        f"changes the next layer's input by {max(x['shift_ratio'] for x in normed):.1g} of its size: nothing)."
    ))  # fmt: skip


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("tanh")
    if run is None and session.mnist_data is None:
        return not_run(ID, TITLE, a.max_points(ID), Failure(kind="grader_error", message="the grader has no "
                       "image data for this lab"), "tanh_model")  # fmt: skip
    failure = run_failure(run, "tanh_model(batchnorm)")
    gain, metrics = gain_item(session, a)
    metrics = {"gain": metrics}
    series: list[Series] = []
    items = [gain]
    sat_title = "tanh_model(False) at init: neither saturated nor vanishing"
    bn_title = "tanh_model(True): Linear(bias=False) -> BatchNorm1d -> Tanh"
    if failure is not None or run is None:
        message = failure.message if failure is not None else "tanh_model was not run"
        items += [item(a, ID, "saturation", sat_title, False, f"tanh_model(False) could not be run: {message}"),
                  item(a, ID, "bias_before_batchnorm", bn_title, False, f"tanh_model(True) could not be run: "
                       f"{message}")]  # fmt: skip
        return scored(ID, TITLE, items, hint=HINT, metrics=metrics, passed_message="")
    failed = run.params.get("failed", {})
    for variant, key in KEYS.items():
        sat = variant == "plain"
        if key in failed:
            items.append(item(a, ID, "saturation" if sat else "bias_before_batchnorm", sat_title if sat else bn_title,
                              False, f"{SHOWN[variant]} could not be built: {failed[key]}"))  # fmt: skip
            continue
        try:
            metrics[variant], s = diagnostics(run, key, a.tanh.saturation_level)
            series += [x.model_copy(update={"name": f"{variant}.{x.name}"}) for x in s]
            if sat:
                items.append(saturation_item(run, a, metrics[variant]["init"]["layers"]))
            else:
                metrics["batchnorm"] = batchnorm_layers(run, a)
                items.append(bias_item(a, metrics["batchnorm"]))
        except BadReply as e:
            items.append(item(a, ID, "saturation" if sat else "bias_before_batchnorm", sat_title if sat else bn_title,
                              False, bad_reply_failure(e).message))  # fmt: skip
    items.sort(key=lambda i: ["gain", "saturation", "bias_before_batchnorm"].index(i.id))
    return scored(ID, TITLE, items, hint=HINT, metrics=metrics, series=series, passed_message=(
        "tanh_model(False) has Kaiming's gain 5/3 and starts neither saturated nor vanishing; tanh_model(True) "
        "puts a batch norm, with no bias before it, in every hidden layer."
    ))  # fmt: skip


# -- the unit: the models it builds, its run and its facts ------------------------------------------------------
def models(a: Assignment, mnist: bool) -> list[dict]:
    if not mnist:
        return []
    return [{"key": KEYS[v], "factory": "tanh_model", "args": [v == "bn"], "seed": a.seed, "input": 784}
            for v in ("plain", "bn")]  # fmt: skip


def _tanh(session: Session) -> Made | None:
    a, d, t = session.assignment, session.mnist_data, session.assignment.tanh
    assert d is not None
    params = {"keys": list(KEYS.values()), "seed": a.seed, "steps": t.steps, "batch_size": t.batch_size, "lr": t.lr,
              "diag_size": t.probe_size, "ratio_every": max(1, t.steps // 500)}  # fmt: skip
    return params, {"x_train": d.x_train, "y_train": d.y_train}, list(KEYS.values())


def facts(check: CheckResult) -> list[Fact]:
    m, out = check.metrics, []
    g = m.get("gain", {})
    layers = g.get("layers", [])
    if layers:
        mistakes = [f"layer {x['layer']}: {x['mistake']}" for x in layers if x["mistake"]]
        measured = ", ".join(f"{x['gain']:.3g}" for x in layers) + (f" ({'; '.join(mistakes)})" if mistakes else "")
        out.append(Fact("tanh_model(False): weight std x sqrt(fan_in) of hidden layers 1-5",
                        f"5/3 = 1.67 ± {g.get('tolerance', 0.1):.0%} each", measured))  # fmt: skip
    for variant in ("plain", "bn"):
        for when, said in (("init", "at init"), ("final", "after training")):
            stats = m.get(variant, {}).get(when, {}).get("layers", [])
            if not stats:
                continue
            scored_here = variant == "plain" and when == "init"
            expected = (f"layers 2-5 at most {g.get('saturation_max', 0.25):.0%}; last std >= {g.get('std_min', 0.2):g}"
                        if scored_here else "reported")  # fmt: skip
            shares = ", ".join(f"{x['saturated_percent']:.0f}% ({x['std']:.2f})" for x in stats)
            out.append(Fact(f"{SHOWN[variant]} {said}: saturated share (std) of hidden layers 1-{len(stats)}",
                            expected, shares))  # fmt: skip
    bn = m.get("batchnorm", [])
    if bn:
        normed = [str(x["layer"]) for x in bn if x["batchnorm"]]
        biases = [f"{x['bias']} (|gradient| <= {x['bias_grad_max']:.1g})" for x in bn if x["bias"] is not None]
        found = f"{', '.join(normed) or 'none'}; {', '.join(biases) or 'none'}"
        out.append(Fact("tanh_model(True): hidden layers that feed a batch norm; biases before it",
                        f"all {len(bn)}; none", found))  # fmt: skip
        ratios = [x["shift_ratio"] for x in bn if x["batchnorm"]]
        if ratios:
            out.append(Fact("tanh_model(True): change of the next layer's input when a random bias is added before "
                            "a batch norm (relative)", "0 (rounding)",
                            f"at most {max(ratios):.1g}"))  # fmt: skip
    return out


SPEC = CheckSpec(
    ID, TITLE, ("tanh_model",), check, about=ABOUT, models=models,
    runs=(RunSpec("tanh", "tanh_stats", _tanh, needs=("tanh_model",), mnist=True, each=True),),
    facts=facts,
    figures=(
        ("tanh_model(False) at init: activations (the share of saturated values, |tanh| > 0.97, in each layer's "
         "label), gradients and gradient:data ratios.", "diagnostics", {"variant": "plain", "when": "init"}),
        ("tanh_model(False) after training (SGD, batch 32, lr 0.1): the four diagnostics.", "diagnostics",
         {"variant": "plain"}),
        ("tanh_model(True) at init, in train mode (batch statistics): activations, gradients and gradient:data "
         "ratios.", "diagnostics", {"variant": "bn", "when": "init"}),
        ("tanh_model(True) after training: the four diagnostics.", "diagnostics", {"variant": "bn"}),
    ),
)  # fmt: skip
