"""Check 4 (part 3): dropout measured from the model's behaviour, and the regularization it buys.

The trusted task returns, for a probe batch, every linear layer's input and output in two eval-mode and two
train-mode passes of the rebuilt model. Here, for layer k, the value it would get without dropout is relu(output
of layer k-1) (the image itself for k = 0). In train mode the fraction of those values that arrive zeroed is the
dropout rate. In eval mode nothing is dropped and every value is scaled alike. The two modes must agree on
average: the kept values scaled by s_train in training and everything by s_eval at test time, with
(1 - p) * s_train = s_eval. Inverted dropout (s_train = 1 / (1 - p), s_eval = 1) and the dropout paper's way
(s_train = 1, s_eval = 1 - p) both do; dropping without any rescaling does not.
"""

from __future__ import annotations

import math

import torch

from grader.assignment import Assignment
from grader.checks.architecture import mnist_structure
from grader.checks.base import (
    CheckSpec,
    accuracy,
    bad_reply_failure,
    cross_entropy,
    item,
    not_run,
    number,
    run_failure,
    scored,
)
from grader.result import CheckResult, Fact, Item, Series
from grader.session import BadReply, Made, Run, RunSpec, Session, mc_schedule

ID, TITLE = "dropout", "Part 3: dropout"
ABOUT = (
    "Part 3 trains the 784-800-800-10 network on images with and without dropout. Dropout must zero 20% of "
    "the inputs and 50% of the hidden units in training only, and the two modes must agree on average: kept "
    "values scaled by 1/(1-p) in training (inverted dropout) or everything by 1-p at test time (as in the "
    "dropout paper). The grader measures this from what reaches each linear layer, "
    "and checks that dropout narrows the gap between validation and training loss. Averaging many "
    "train-mode passes (an MC-dropout ensemble) is compared with the eval-mode network."
)
HINT = (
    "Use nn.Dropout(0.2) before the first Linear layer and nn.Dropout(0.5) after each hidden ReLU, inside the "
    "model (e.g. in an nn.Sequential), and only when dropout=True. nn.Dropout is active in model.train() and "
    "off in model.eval(); if you call F.dropout yourself, pass training=self.training."
)


def layer_io(run: Run, mode: str, probe: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    layers = range(run.count(f"probe.{mode}.in"))
    ins = [run.tensor(f"probe.{mode}.in{k}", (probe.shape[0], None)) for k in layers]
    outs = [run.tensor(f"probe.{mode}.out{k}", (probe.shape[0], None)) for k in layers]
    if len(ins) < 2:
        raise BadReply("mnist_model must be built from nn.Linear layers (784 -> 800 -> 800 -> 10)")
    return ins, outs


def sources(ins: list[torch.Tensor], outs: list[torch.Tensor], probe: torch.Tensor) -> list[torch.Tensor]:
    """What each Linear layer's input would be without dropout: the image, then relu of the previous output."""
    return [probe] + [torch.relu(o) for o in outs[:-1]]


def measure(ins: list[torch.Tensor], srcs: list[torch.Tensor]) -> list[dict]:
    """Per Linear layer: the fraction of non-zero would-be inputs that arrive as 0, and the scale of the rest."""
    rates = []
    for x, s in zip(ins, srcs, strict=True):
        if x.shape != s.shape:
            rates.append({"rate": float("nan"), "scale": float("nan"), "shape_mismatch": True})
            continue
        live = s.abs() > 1e-6
        dropped = live & (x == 0)
        kept = live & (x != 0)
        rate = float(dropped.sum() / live.sum().clamp(min=1))
        scale = float((x[kept] / s[kept]).median()) if kept.any() else float("nan")
        rates.append({"rate": rate, "scale": scale, "shape_mismatch": False})
    return rates


def eval_scales(ins: list[torch.Tensor], srcs: list[torch.Tensor]) -> list[float] | None:
    """Per layer, the one factor by which eval mode scales the would-be input (1 without dropout), or None when
    some layer's input is not a scaled copy of it (values dropped, or something else done to them)."""
    scales = []
    for x, s in zip(ins, srcs, strict=True):
        if x.shape != s.shape:
            return None
        live = s.abs() > 1e-6
        scale = float((x[live] / s[live]).median()) if live.any() else 1.0
        if not (0 < scale <= 1.0 + 1e-4) or not torch.allclose(x, s * scale, rtol=1e-4, atol=1e-5):
            return None
        scales.append(scale)
    return scales


def _passes_equal(run: Run, a: str, b: str, n: int) -> bool:
    return bool(torch.equal(run.tensor(f"probe.{a}.logits", (n, 10)), run.tensor(f"probe.{b}.logits", (n, 10))))


def _no_dropout(ins: list[torch.Tensor], srcs: list[torch.Tensor]) -> bool:
    return all(
        x.shape == s.shape and torch.allclose(x, s, rtol=1e-4, atol=1e-5) for x, s in zip(ins, srcs, strict=True)
    )


def _rate_item(a: Assignment, item_id: str, title: str, measured: list[dict], expected: float, where: str) -> Item:
    m = a.mnist
    bad = [r for r in measured if r["shape_mismatch"] or not abs(r["rate"] - expected) <= m.rate_tolerance]
    unscaled = [
        r for r in measured if not bad and not abs(r["scale"] * (1 - expected) - r.get("eval_scale", 1.0)) <= 0.02
    ]
    shown = ", ".join(f"{r['rate']:.1%}" for r in measured)
    if bad:
        return item(
            a,
            ID,
            item_id,
            title,
            False,
            f"In train mode {where} dropped {shown} of the values; the lab asks for {expected:.0%}.",
        )
    if unscaled:
        return item(
            a,
            ID,
            item_id,
            title,
            False,
            f"Dropout on {where} drops {shown} in train mode and scales the kept values by "
            f"x{unscaled[0]['scale']:.3g}, while eval mode scales them by x{unscaled[0].get('eval_scale', 1.0):.3g}: "
            "on average the two modes disagree. Either divide by 1 - p in training (inverted dropout, nothing "
            "to do at test time) or multiply by 1 - p in eval mode (as in the dropout paper).",
        )
    style = (
        "scaled by 1/(1-p) in training"
        if abs(measured[0].get("eval_scale", 1.0) - 1) < 0.02
        else ("and scaled by 1-p in eval mode, as in the dropout paper")
    )
    return item(a, ID, item_id, title, True, f"Dropout on {where} drops {shown} in train mode, {style}.")


def implementation_items(
    a: Assignment, drop: Run, plain: Run, probe: torch.Tensor, session: Session
) -> tuple[list[Item], dict]:
    n = probe.shape[0]
    ins_e, outs_e = layer_io(drop, "eval0", probe)
    scales = eval_scales(ins_e, sources(ins_e, outs_e, probe))
    eval_ok = _passes_equal(drop, "eval0", "eval1", n) and scales is not None
    items = [
        item(
            a,
            ID,
            "eval_mode",
            "Dropout off in eval mode",
            eval_ok,
            "In eval mode mnist_model(True) is deterministic and drops nothing."
            if eval_ok
            else "In eval mode mnist_model(True) still drops values (two eval passes differ, or a layer's input is "
            "not a scaled copy of the previous ReLU output). Dropout must be off after model.eval().",
        )
    ]
    ins_p, outs_p = layer_io(plain, "train0", probe)
    plain_ok = _passes_equal(plain, "train0", "train1", n) and _no_dropout(ins_p, sources(ins_p, outs_p, probe))
    items.append(
        item(
            a,
            ID,
            "no_dropout_variant",
            "mnist_model(False) has no dropout",
            plain_ok,
            "mnist_model(False) drops nothing, even in train mode."
            if plain_ok
            else "mnist_model(False) still drops values in train mode; build it without dropout.",
        )
    )
    passes = []
    for mode in ("train0", "train1"):
        ins, outs = layer_io(drop, mode, probe)
        passes.append(measure(ins, sources(ins, outs, probe)))
    if len(passes[0]) != len(passes[1]):
        raise BadReply("the two train-mode passes of mnist_model(True) ran a different number of Linear layers")
    measured = [  # per layer, averaged over the two passes
        {
            "rate": (first["rate"] + second["rate"]) / 2,
            "scale": (first["scale"] + second["scale"]) / 2,
            "shape_mismatch": first["shape_mismatch"] or second["shape_mismatch"],
            "eval_scale": scales[k] if scales is not None and k < len(scales) else 1.0,
        }
        for k, (first, second) in enumerate(zip(*passes, strict=True))
    ]
    stochastic = not _passes_equal(drop, "train0", "train1", n)
    m = a.mnist
    items.append(_rate_item(a, "input_rate", "20% dropout on the input", measured[:1], m.input_rate, "the input"))
    hidden = _rate_item(
        a,
        "hidden_rate",
        "50% dropout after each hidden layer",
        measured[1:],
        m.hidden_rate,
        "the hidden layers",
    )
    graph = session.built.graphs.get("mnist.dropout", {})
    if graph.get("repeats_random") and hidden.passed:
        hidden = hidden.model_copy(
            update={
                "passed": False,
                "points": 0.0,
                "detail": "mnist_model(True) drops values, but with the same mask on every pass: two train-mode "
                "passes of your model on the same images gave the same output (torch.manual_seed inside forward?). "
                "Dropout must draw a new random mask on every pass; seed only outside the model.",
            }
        )
    if not stochastic and hidden.passed:
        hidden = hidden.model_copy(
            update={
                "passed": False,
                "points": 0.0,
                "detail": "Two train-mode passes gave identical outputs: no dropout.",
            }
        )
    items.append(hidden)
    return items, {"measured_rates": measured, "train_mode_stochastic": stochastic}


def training_summary(run: Run, session: Session) -> dict:
    """Per-epoch curves on the curve subsets (the first images of each set), final numbers on the whole sets."""
    d = session.mnist_data
    assert d is not None
    n_train, n_val = curve_size(session.assignment, len(d.y_train)), curve_size(session.assignment, len(d.y_val))
    y_train, y_val = d.y_train[:n_train], d.y_val[:n_val]
    train = run.tensor("train_logits", (None, n_train, 10), finite=False)
    val = run.tensor("val_logits", (train.shape[0], n_val, 10), finite=False)
    final_train = run.tensor("final_train_logits", (len(d.y_train), 10), finite=False)
    final_val = run.tensor("final_val_logits", (len(d.y_val), 10), finite=False)
    curves = {
        "train_loss": [cross_entropy(t, y_train) for t in train],
        "val_loss": [cross_entropy(v, y_val) for v in val],
        "train_error": [100 * (1 - accuracy(t, y_train)) for t in train],
        "val_error": [100 * (1 - accuracy(v, y_val)) for v in val],
    }
    final = {
        "train_loss": cross_entropy(final_train, d.y_train),
        "val_loss": cross_entropy(final_val, d.y_val),
        "train_error": 100 * (1 - accuracy(final_train, d.y_train)),
        "val_error": 100 * (1 - accuracy(final_val, d.y_val)),
    }
    return {
        "curves": curves,
        "curve_images": {"train": n_train, "val": n_val},
        **final,
        "val_error_ci95": error_ci95(final["val_error"], len(d.y_val)),
        "gap": final["val_loss"] - final["train_loss"],
    }


def error_ci95(error_percent: float, n: int) -> float:
    """Half-width, in percentage points, of the normal-approximation 95% interval of an error rate on n images."""
    p = min(max(error_percent / 100, 0.0), 1.0)
    return 100 * 1.96 * math.sqrt(p * (1 - p) / max(n, 1))


def mc_ensemble(run: Run, session: Session) -> dict:
    """Validation error of the average of the first K train-mode passes' logits, for every K, against the
    eval-mode (weight-scaled) model on the same images."""
    d = session.mnist_data
    assert d is not None
    n = min(session.assignment.mnist.mc_subset, len(d.y_val))
    ks = list(run.params["mc_ks"])
    predictions = run.tensor("mc_predictions", (len(ks), n))
    if ((predictions < 0) | (predictions > 9) | (predictions != predictions.round())).any():
        raise BadReply("'mc_predictions' holds values that are not classes 0-9")
    labels = d.y_val[:n]
    wrong = predictions != labels.to(predictions.dtype)  # (len(ks), n)
    errors = [100 * float(w.double().mean()) for w in wrong]
    eval_logits = run.tensor("final_val_logits", (len(d.y_val), 10))[:n]
    # paired on the same images: d_i = wrong_mc_i - wrong_eval_i, mean +- 1.96 sd / sqrt(n)
    diff = wrong[-1].double() - (eval_logits.argmax(-1) != labels).double()
    sd = float(diff.std()) if n > 1 else 0.0
    return {
        "difference": 100 * float(diff.mean()),
        "difference_ci95": 100 * 1.96 * sd / math.sqrt(max(n, 1)),
        "k": ks,
        "error": errors,
        "error_ci95": [error_ci95(e, n) for e in errors],
        "eval_error": 100 * (1 - accuracy(eval_logits, labels)),
        "images": n,
    }


def check(session: Session, a: Assignment) -> CheckResult:
    drop, plain = session.run("mnist_dropout"), session.run("mnist_plain")
    for run, what in ((drop, "mnist_model(True)"), (plain, "mnist_model(False)")):
        failure = run_failure(run, "mnist_model(dropout)")
        if failure is not None:
            return not_run(ID, TITLE, a.max_points(ID), failure, what)
    assert drop is not None and plain is not None and session.mnist_data is not None
    probe = session.mnist_data.x_val[: a.mnist.probe_size].double()
    try:
        items, metrics = implementation_items(a, drop, plain, probe, session)
        with_dropout, without = training_summary(drop, session), training_summary(plain, session)
        metrics["mc"] = mc_ensemble(drop, session)
    except BadReply as e:
        return not_run(ID, TITLE, a.max_points(ID), bad_reply_failure(e), "mnist_model")
    metrics["with_dropout"], metrics["without_dropout"] = with_dropout, without
    learned = with_dropout["val_error"] < 50.0
    regularizes = learned and with_dropout["gap"] < without["gap"]
    detail = (
        f"Generalization gap (validation - training loss): {with_dropout['gap']:.3f} with dropout, "
        f"{without['gap']:.3f} without."
    )
    change = with_dropout["val_error"] - without["val_error"]
    detail += (
        f" Validation error {with_dropout['val_error']:.1f}% with dropout against {without['val_error']:.1f}% "
        + (f"without: dropout made it {abs(change):.1f} points {'worse' if change > 0 else 'better'}."
           if abs(change) >= 0.05 else "without: the same.")
    )  # fmt: skip
    if change > 0 and regularizes:
        detail += (
            " A smaller gap with a higher validation error means the dropout model is not yet done training (its "
            "training loss is higher too): at this budget dropout did not pay off."
        )
    if not learned:
        detail += f" The dropout model did not learn (validation error {with_dropout['val_error']:.1f}%)."
    elif not regularizes:
        detail += " Dropout should shrink the gap; check the rates and where the dropout layers sit."
    structural = [f for f in mnist_structure(session) if "in train mode" not in f]  # dropout on logits: not here
    if structural and regularizes:  # the lab's question is about its MLP; another model's gap answers nothing
        regularizes = False
        detail = f"{structural[0]} The regularization is measured on the lab's network only. " + detail
    items.append(item(a, ID, "regularization", "Dropout shrinks the generalization gap", regularizes, detail))
    mc = metrics["mc"]
    items.append(
        Item(
            id="mc_ensemble",
            title="MC-dropout ensemble",
            passed=True,
            points=0.0,
            max_points=0.0,
            detail=f"Averaging {mc['k'][-1]} train-mode passes gives {mc['error'][-1]:.2f}% validation error on "
            f"{mc['images']} images; the eval-mode model gives {mc['eval_error']:.2f}% on the same images. Paired "
            f"difference (MC - eval): {mc['difference']:+.2f} points ± {mc['difference_ci95']:.2f} (95%), "
            + (
                "so the ensemble is better."
                if mc["difference"] + mc["difference_ci95"] < 0
                else "so the ensemble is worse."
                if mc["difference"] - mc["difference_ci95"] > 0
                else "too close to call on these images."
            ),
        )
    )
    epochs = list(range(len(with_dropout["curves"]["train_loss"])))
    series = [
        Series(name=f"{variant}.{k}", x=epochs, y=v, meta={"images": s["curve_images"]})
        for variant, s in (("with_dropout", with_dropout), ("without_dropout", without))
        for k, v in s["curves"].items()
    ]
    mc_meta = {"eval_error": mc["eval_error"], "ci95": mc["error_ci95"]}
    series.append(Series(name="mc.error", x=mc["k"], y=mc["error"], meta=mc_meta))
    if any("changes the last layer's output" in f or "values of state besides" in f for f in structural):
        # not the lab's MLP but something computed beside it (a lookup): its errors are not reported as the lab's
        for key in ("with_dropout", "without_dropout", "mc"):
            metrics.pop(key, None)
        series = []
    return scored(
        ID,
        TITLE,
        items,
        hint=HINT,
        metrics=metrics,
        series=series,
        passed_message="Dropout acts at the asked rates in training only, and it shrinks the gap.",
    )


# -- the unit: the models it builds, its runs, its facts and figures --------------------------------------------
def models(a: Assignment, mnist: bool) -> list[dict]:
    if not mnist:
        return []
    return [{"key": f"mnist.{'dropout' if d else 'plain'}", "factory": "mnist_model", "args": [d], "seed": a.seed,
             "input": 784} for d in (True, False)]  # fmt: skip


def curve_size(a: Assignment, n: int) -> int:
    """Images of a set of n behind the per-epoch MNIST curves (the final numbers use the whole set)."""
    subset = a.mnist.curve_subset
    return n if subset is None else min(subset, n)


def mnist_params(session: Session, dropout: bool) -> tuple[dict, dict[str, torch.Tensor]]:
    """The mnist_train task's parameters and inputs for mnist_model(dropout): the lab's AdamW recipe, the dropout
    probe, the curves and the MC-dropout ensemble."""
    a, d = session.assignment, session.mnist_data
    m = a.mnist
    assert d is not None
    steps = m.epochs * math.ceil(len(d.y_train) / m.batch_size)
    params = {
        "dropout": dropout, "epochs": m.epochs, "batch_size": m.batch_size, "lr": m.lr,
        "seed": a.seed, "mc_ks": mc_schedule(m.mc_passes), "diag_size": 256,
        "curve_train": curve_size(a, len(d.y_train)), "curve_val": curve_size(a, len(d.y_val)),
        "ratio_every": max(1, steps // 500),  # the update:data ratio at 500 steps or so: the plot's resolution
    }  # fmt: skip
    inputs = {
        "x_train": d.x_train, "y_train": d.y_train, "x_val": d.x_val,
        "x_mc": d.x_val[: m.mc_subset], "x_probe": d.x_val[: m.probe_size],
    }  # fmt: skip
    return params, inputs


def _mnist(variant: str) -> RunSpec:
    def make(session: Session) -> Made:
        return *mnist_params(session, variant == "dropout"), [f"mnist.{variant}"]

    return RunSpec(f"mnist_{variant}", "mnist_train", make, needs=("mnist_model",), mnist=True)


def facts(check: CheckResult) -> list[Fact]:
    m = check.metrics
    out: list[Fact] = []
    for i, r in enumerate(m.get("measured_rates", [])):
        where = "input" if i == 0 else f"after hidden layer {i}"
        out.append(Fact(f"dropout rate {where}", "20%" if i == 0 else "50%",
                        f"{r['rate']:.1%} (scale x{number(r['scale'])})"))  # fmt: skip
    for key, label in (("with_dropout", "with dropout"), ("without_dropout", "without dropout")):
        s = m.get(key)
        if s:
            error = f"{s['val_error']:.1f}% ± {s.get('val_error_ci95', 0):.1f}"
            out.append(Fact(f"{label}: validation - training loss", "smaller with dropout",
                            f"{s['gap']:.3f} (val error {error})"))  # fmt: skip
    return out


SPEC = CheckSpec(
    ID, TITLE, ("mnist_model",), check, about=ABOUT, models=models, runs=(_mnist("dropout"), _mnist("plain")),
    facts=facts,
    figures=(
        ("Training and validation curves with and without dropout, measured after each epoch on the first images of "
         "each set (the table's final numbers use every image).", "dropout_curves", {}),
        ("MC-dropout ensemble on the validation images: error against the number of averaged passes, with its 95% "
         "interval.", "mc_ensemble", {}),
    ),
)  # fmt: skip
