"""What each check's section says: why the check exists, and its key expected-against-measured figures."""

from __future__ import annotations

import math
from dataclasses import dataclass

from grader.checks.base import listed
from grader.result import CheckResult

ABOUT = {
    "loss_at_init": (
        "Before training, a classifier has no reason to prefer any class, so its softmax should be close to uniform "
        "and its cross-entropy close to ln(number of classes). A loss far above that level means the logits start "
        "large: the network is confidently wrong, and the first steps of training are spent only shrinking the "
        "output layer. Your recommended init is scored; the inits the lab prescribes are shown for comparison."
    ),
    "sigma_sweep": (
        "Part 1 trains the small 2-6-3-2 network with every weight drawn from N(0, sigma). Too small a sigma leaves "
        "the activations and gradients tiny, so training idles at the chance level before it takes off; too large a "
        "sigma makes the network overconfident and kills ReLU units, and training settles on a poor solution. The "
        "grader trains your own circle_model over a grid of sigmas and several seeds, names the regime of every "
        "run with a fixed rule, and checks that your three SIGMAS behave as their names say. Scaling the inputs acts "
        "like scaling the first layer's weights, so your good sigma trained on scaled data shows the same regimes; "
        "too large a learning rate breaks training another way."
    ),
    "activation_stats": (
        "Part 2 looks at a 20-layer ReLU network before training. With zero biases, each layer multiplies the "
        "scale of its output by sqrt(fan_in * var(w) / 2): about 7.07 for N(0, 1) at width 100, so activations "
        "explode; 0.71 for Glorot, so they vanish slowly; and exactly 1 for He, which was derived for ReLU. "
        "Gradients follow the same rule backwards. The grader measures both on 2048 inputs and compares them "
        "with this expectation, and it matches your weights against known inits to name a mistake."
    ),
    "dropout": (
        "Part 3 trains the 784-800-800-10 network on images with and without dropout. Dropout must zero 20% of "
        "the inputs and 50% of the hidden units in training only, and the two modes must agree on average: kept "
        "values scaled by 1/(1-p) in training (inverted dropout) or everything by 1-p at test time (as in the "
        "dropout paper). The grader measures this from what reaches each linear layer, "
        "and checks that dropout narrows the gap between validation and training loss. Averaging many "
        "train-mode passes (an MC-dropout ensemble) is compared with the eval-mode network."
    ),
    "init_sanity": (
        "A few training steps show whether gradient reaches every weight. With all weights zero, every hidden "
        "unit outputs the same value and passes back no gradient, so only the output bias learns (makemore E01); "
        "units that start as exact copies of each other receive identical updates and never become different. The "
        "grader shows E01 on your own network: circle_model(0.0) has every weight and bias at zero, and after "
        "training only the output bias may have changed."
    ),
    "fold_batchnorm": (
        "In eval mode a BatchNorm layer is a fixed affine map per unit, so it can be merged into the Linear layer "
        "before it (makemore E02). The grader trains its own Linear/BatchNorm/Tanh network with non-default eps, "
        "a layer without bias and a BatchNorm without affine parameters, folds it with your function, rebuilds "
        "the folded model outside the sandbox and compares the outputs; a wrong layer is matched against the "
        "common mistakes (eps, variance for std, running mean, beta, gamma) to name one."
    ),
    "architecture": (
        "Each model as the lab prescribes it, read from what its forward pass does and from its weights: the "
        "layer sizes, a ReLU between layers, the logits returned as they are (no softmax, activation or dropout "
        "after the last layer), weights drawn from the prescribed distribution (N(0, sigma) for every sigma "
        "circle_model is given, N(0, 0.1) for the image network) and zero biases."
    ),
    "training_diagnostics": (
        "The four diagnostics of the makemore lecture for the image models at init and after training, taken in eval "
        "mode (the dropout model with dropout off): histograms of activations and "
        "of their gradients per layer (with the share of dead ReLU units), the ratio of each weight's gradient to "
        "its values, and the size of each update relative to the weights over training, where about 1e-3 "
        "(-3 in log10) is a healthy rule of thumb. Reported, not scored."
    ),
}


@dataclass(frozen=True)
class Fact:
    label: str
    expected: str
    measured: str


def _g(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}g}"
    return "n/a" if value is None else str(value)


def facts(check: CheckResult) -> list[Fact]:
    m = check.metrics
    out: list[Fact] = []
    if check.id == "sigma_sweep":
        for key in ("small", "good", "big"):
            s = m.get(f"sigma_{key}")
            if s:
                counts = ", ".join(f"{n} {r}" for r, n in s["regime_counts"].items())
                out.append(Fact(f"SIGMAS['{key}'] = {s['sigma']:g}", key,
                                f"{counts}; final accuracy {_g(s['final_val_acc'])}"))  # fmt: skip
        for key, label in (("recommended", "your init (sigma=None)"), ("glorot", "Glorot")):
            s = m.get(key)
            if s:
                out.append(Fact(label, "(reported)", f"{s['regime']}; final accuracy {_g(s['final_val_acc'])}"))
        for key, field, label in (("input_scales", "scale", "SIGMAS['good'], inputs x{:g}"),
                                  ("learning_rates", "lr", "SIGMAS['good'], lr {:g}")):  # fmt: skip
            for row in m.get(key, []):
                out.append(Fact(label.format(row[field]), "(reported)",
                                f"{row['regime']}; final accuracy {_g(row['final_val_acc'])}"))  # fmt: skip
    elif check.id == "activation_stats":
        for init in ("normal", "xavier", "kaiming"):
            s = m.get(init)
            if not s:
                continue
            rms, exp = s["rms"], s["expected_rms"]
            mid = len(rms) // 2
            out.append(Fact(f"{init}: growth per layer (middle)", _g(exp[mid] / exp[mid - 1]),
                            _g(rms[mid] / rms[mid - 1]) if rms[mid - 1] else "n/a"))  # fmt: skip
            found = s.get("identified_init") or "unrecognised"
            out.append(Fact(f"{init}: weights look like", init, found))
    elif check.id == "dropout":
        rates = m.get("measured_rates", [])
        for i, r in enumerate(rates):
            where = "input" if i == 0 else f"after hidden layer {i}"
            out.append(Fact(f"dropout rate {where}", "20%" if i == 0 else "50%",
                            f"{r['rate']:.1%} (scale x{_g(r['scale'])})"))  # fmt: skip
        for key, label in (("with_dropout", "with dropout"), ("without_dropout", "without dropout")):
            s = m.get(key)
            if s:
                error = f"{s['val_error']:.1f}% ± {s.get('val_error_ci95', 0):.1f}"
                out.append(Fact(f"{label}: validation - training loss", "smaller with dropout",
                                f"{s['gap']:.3f} (val error {error})"))  # fmt: skip
    elif check.id == "init_sanity":
        zero = m.get("zero_init")
        if zero:
            bias = zero["output_bias"]
            out.append(Fact(f"circle_model(0.0) after {zero['steps']} SGD steps: parameters that changed",
                            f"only the output bias ({bias})" if bias else "only the output bias",
                            f"{listed(zero['changed']) or 'none'}; accuracy {zero['accuracy']:.0%} "
                            f"(largest class {zero['majority']:.0%})"))  # fmt: skip
        for model, s in m.items():
            if model == "zero_init":
                continue
            frozen = ", ".join(s["frozen"]) or "none"
            copies = sum(s["duplicate_units"].values())
            out.append(Fact(model, "every weight gets gradient; no copied units",
                            f"no gradient: {frozen}; copied units: {copies}"))  # fmt: skip
    elif check.id == "fold_batchnorm" and "max_relative_error" in m:
        out.append(Fact("max |folded - original| (relative)", f"<= {m['tolerance']:g}",
                        _g(m["max_relative_error"], 2)))  # fmt: skip
        out.append(Fact("layers run by the folded model", "Linear and Tanh only", ", ".join(m["layers"])))
    elif check.id == "loss_at_init" and "circle_recommended" in m:
        out.append(Fact("circle_model(None), median over seeds", _g(m["expected"]),
                        _g(m["circle_recommended"]["median"])))  # fmt: skip
    return out
