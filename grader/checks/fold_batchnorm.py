"""Check 6 (makemore E02): the student's fold_batchnorm on the grader's trained Linear/BatchNorm1d/Tanh MLP.

The folded model's layers come back as data (types, weights, biases); the grading side rebuilds it from them and
compares its outputs with the original model's eval-mode outputs, both computed here."""

from __future__ import annotations

import copy

import torch
from torch import nn

from grader.assignment import Assignment
from grader.batchnorm_teacher import inputs as teacher_inputs
from grader.batchnorm_teacher import teacher_model
from grader.checks.base import CheckSpec, bad_reply_failure, item, listed, not_run, number, run_failure, scored
from grader.result import CheckResult, Fact, Series
from grader.session import BadReply, Made, Run, RunSpec, Session
from grader.text import NAME_LIMIT, clean

ID, TITLE = "fold_batchnorm", "BatchNorm folding (makemore E02)"
ABOUT = (
    "In eval mode a BatchNorm layer is a fixed affine map per unit, so it can be merged into the Linear layer "
    "before it (makemore E02). The grader trains its own Linear/BatchNorm/Tanh network with non-default eps, "
    "a layer without bias and a BatchNorm without affine parameters, folds it with your function, rebuilds "
    "the folded model outside the sandbox and compares the outputs; a wrong layer is matched against the "
    "common mistakes (eps, variance for std, running mean, beta, gamma) to name one."
)
HINT = (
    "In eval mode BatchNorm computes gamma * (z - running_mean) / sqrt(running_var + eps) + beta. With "
    "s = gamma / sqrt(running_var + eps), the folded Linear has W' = s[:, None] * W and "
    "b' = s * (b - running_mean) + beta; use b = 0 when the Linear has no bias and gamma = 1, beta = 0 when the "
    "BatchNorm has affine=False. Return an nn.Sequential of the new Linear layers and the Tanh layers."
)
ALLOWED = {"Linear": None, "Tanh": nn.Tanh, "Identity": nn.Identity}


def rebuild(run: Run, layers: list) -> nn.Sequential:
    """The folded model rebuilt on the trusted side from the returned layer list and weights."""
    modules: list[nn.Module] = []
    for k, layer in enumerate(layers):
        kind = layer.get("type") if isinstance(layer, dict) else None
        if kind == "Linear":
            w = run.tensor(f"layer{k}.weight", (None, None))
            lin = nn.Linear(w.shape[1], w.shape[0], bias=run.has(f"layer{k}.bias")).double()
            with torch.no_grad():
                lin.weight.copy_(w)
                if lin.bias is not None:
                    lin.bias.copy_(run.tensor(f"layer{k}.bias", (w.shape[0],)))
            modules.append(lin)
        elif kind in ALLOWED and layer.get("torch"):
            modules.append(ALLOWED[kind]())  # type: ignore[misc]
        else:
            shown = clean(kind, NAME_LIMIT) if isinstance(kind, str) else kind
            raise BadReply(f"the folded model runs a {shown!r} layer; return only nn.Linear and nn.Tanh layers")
    return nn.Sequential(*modules)


def _pairs(teacher: nn.Sequential) -> list[tuple[nn.Linear, nn.BatchNorm1d]]:
    layers = list(teacher)
    return [(lin, bn) for lin, bn in zip(layers, layers[1:], strict=False)
            if isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d)]  # fmt: skip


def _folds(lin: nn.Linear, bn: nn.BatchNorm1d) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The right fold of one Linear + BatchNorm1d pair and the folds that common mistakes give, by mistake."""
    w = lin.weight.detach().double()
    b = lin.bias.detach().double() if lin.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.detach().double() if bn.affine else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.affine else torch.zeros_like(mean)
    eps = bn.eps

    def fold(scale: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return scale[:, None] * w, shift

    s = gamma / torch.sqrt(var + eps)
    s_no_eps = gamma / torch.sqrt(var)
    s_var = gamma / (var + eps)
    out = {
        "right": fold(s, s * (b - mean) + beta),
        f"eps ({eps:g}) is missing from sqrt(running_var + eps)": fold(s_no_eps, s_no_eps * (b - mean) + beta),
        "it divides by the variance instead of its square root (the std)": fold(s_var, s_var * (b - mean) + beta),
        "the running mean is not subtracted": fold(s, s * b + beta),
        "beta (the BatchNorm's bias) is not added": fold(s, s * (b - mean)),
        "gamma (the BatchNorm's weight) is not applied": fold(s / gamma, s / gamma * (b - mean) + beta),
    }
    if lin.bias is None:
        out["the folded layer has no bias, so the shift beta - s * running_mean is lost"] = fold(s, torch.zeros_like(b))
    return out


def diagnose(teacher: nn.Sequential, run: Run, layers: list) -> list[str]:
    """For each Linear + BatchNorm1d pair of the grader's network, what the student's folded layer got wrong."""
    linear = [k for k, layer in enumerate(layers) if isinstance(layer, dict) and layer.get("type") == "Linear"]
    pairs = _pairs(teacher)
    if len(linear) != len(pairs):
        return [f"The folded model has {len(linear)} linear layers; the grader's network has {len(pairs)} Linear + "
                "BatchNorm1d pairs, so it needs one folded Linear per pair."]  # fmt: skip
    found = []
    for j, ((lin, bn), k) in enumerate(zip(pairs, linear, strict=True)):
        w = run.tensor(f"layer{k}.weight", tuple(lin.weight.shape))
        b = (
            run.tensor(f"layer{k}.bias", (lin.weight.shape[0],))
            if run.has(f"layer{k}.bias")
            else torch.zeros(lin.weight.shape[0], dtype=torch.float64)
        )
        no_bias = "" if lin.bias is not None else ", no bias"
        affine = "" if bn.affine else ", affine=False"
        shape = f"Linear {lin.in_features} -> {lin.out_features}{no_bias}"
        where = f"Layer {j + 1} ({shape} + BatchNorm1d eps={bn.eps:g}{affine})"
        folds = _folds(lin, bn)
        if _close(w, b, *folds["right"]):
            continue
        named = [why for why, (fw, fb) in folds.items() if why != "right" and _close(w, b, fw, fb)]
        found.append(f"{where}: {named[0]}." if named else f"{where}: its weights or bias differ from the right fold.")
    return found


# How close a folded layer must be to a candidate fold to be that fold, relative to its largest weight or bias: an
# honest fold computed in float32 is within about 1e-7 of the right one, and a missing eps of 1e-3 on the grader's
# network moves the first layer by about 1e-4, so 1e-5 tells them apart with a margin of 10 on each side.
MATCH = 1e-5


def _close(w: torch.Tensor, b: torch.Tensor, fw: torch.Tensor, fb: torch.Tensor) -> bool:
    scale = max(1.0, float(fw.abs().max()), float(fb.abs().max()))
    return float((w - fw).abs().max()) / scale <= MATCH and float((b - fb).abs().max()) / scale <= MATCH


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("fold")
    failure = run_failure(run, "fold_batchnorm(model)")
    if failure is not None:
        return not_run(ID, TITLE, a.max_points(ID), failure, "fold_batchnorm(model)")
    assert run is not None
    teacher, x = teacher_and_inputs(session)
    with torch.no_grad():
        expected = copy.deepcopy(teacher).double()(x.double())
    layers = run.reply.meta.get("layers")
    if not isinstance(layers, list) or len(layers) > 1000:
        return not_run(ID, TITLE, a.max_points(ID), bad_reply_failure(BadReply("no layer list")), "fold_batchnorm")
    kinds = [clean(layer.get("type"), NAME_LIMIT) if isinstance(layer, dict) else "?" for layer in layers]
    batchnorms = [k for k in kinds if "Norm" in k]
    items = [
        item(
            a,
            ID,
            "no_batchnorm",
            "No BatchNorm left",
            not batchnorms,
            "The folded model runs no BatchNorm layer."
            if not batchnorms
            else f"The folded model still runs {len(batchnorms)} normalization layer(s) ({listed(batchnorms)}).",
        )
    ]
    metrics: dict = {"layers": kinds}
    series: list[Series] = []
    try:
        student_y = run.tensor("y", tuple(expected.shape))
        with torch.no_grad():
            folded_y = rebuild(run, layers)(x.double())
    except BadReply as e:
        items.append(
            item(
                a,
                ID,
                "same_outputs",
                "Same outputs as the original",
                False,
                f"The folded model could not be checked: {e}.",
            )
        )
        return scored(ID, TITLE, items, hint=HINT, metrics=metrics, passed_message="")
    scale = max(1.0, float(expected.abs().max()))
    error = float((folded_y - expected).abs().max()) / scale
    consistent = float((folded_y - student_y).abs().max()) / scale <= 1e-4
    ok = error <= a.batchnorm.tolerance and consistent and not batchnorms
    metrics |= {"max_relative_error": error, "tolerance": a.batchnorm.tolerance, "consistent": consistent,
                "scale": scale}  # fmt: skip
    if ok:
        detail = (
            f"Largest difference from the original outputs: {error:.2g} "
            f"(relative; tolerance {a.batchnorm.tolerance:g})."
        )
    elif not consistent:
        detail = "The folded model's own output differs from what its Linear and Tanh layers compute."
    elif batchnorms:
        detail = "The outputs are only checked once no BatchNorm layer is left."
    else:
        try:
            mistakes = diagnose(teacher, run, layers)
        except BadReply:
            mistakes = []
        detail = (
            f"The folded model's outputs differ from the original's by up to {error:.3g} (relative to the "
            f"largest output), more than the tolerance {a.batchnorm.tolerance:g}. A correct fold stays far below "
            "the tolerance, so a folded layer's weights or bias follow a wrong formula."
        ) + ("" if not mistakes else " " + " ".join(mistakes))
        metrics["mistakes"] = mistakes
    items.append(item(a, ID, "same_outputs", "Same outputs as the original", ok, detail))
    sample = torch.linspace(0, expected.numel() - 1, min(400, expected.numel())).long()
    series.append(
        Series(name="fold.outputs", x=expected.flatten()[sample].tolist(), y=folded_y.flatten()[sample].tolist())
    )
    series.append(Series(name="fold.abs_error", y=(folded_y - expected).abs().flatten()[sample].tolist()))
    return scored(
        ID,
        TITLE,
        items,
        hint=HINT,
        metrics=metrics,
        series=series,
        passed_message="Your fold removes every BatchNorm and keeps the eval-mode outputs.",
    )


# -- the unit: its run (the sandbox's build task folds the teacher), its facts and figures ----------------------
def teacher_and_inputs(session: Session) -> tuple[nn.Sequential, torch.Tensor]:
    """The grader's trained network that the build task folded (the same seed makes the same one) and the inputs
    both run on."""
    return session.memo("fold:teacher", lambda: (teacher_model(session.assignment.seed)[0],  # type: ignore[return-value]
                                                 teacher_inputs(512, seed=1)))  # fmt: skip


def _fold(session: Session) -> Made:
    return {}, {"x": teacher_and_inputs(session)[1]}, ["fold"]


def facts(check: CheckResult) -> list[Fact]:
    m = check.metrics
    if "max_relative_error" not in m:
        return []
    return [
        Fact("max |folded - original| (relative)", f"<= {m['tolerance']:g}", number(m["max_relative_error"], 2)),
        Fact("layers run by the folded model", "Linear and Tanh only", ", ".join(m["layers"])),
    ]


SPEC = CheckSpec(
    ID, TITLE, ("fold_batchnorm",), check, about=ABOUT,
    runs=(RunSpec("fold", "fold_batchnorm", _fold, needs=("fold_batchnorm",)),), facts=facts,
    figures=(("Folded against original outputs, and the error distribution.", "fold", {}),),
)  # fmt: skip
