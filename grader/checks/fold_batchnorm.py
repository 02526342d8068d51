"""Check 6 (makemore E02): the student's fold_batchnorm on the grader's trained Linear/BatchNorm1d/Tanh MLP.

The folded model's layers come back as data (types, weights, biases); the grading side rebuilds it from them and
compares its outputs with the original model's eval-mode outputs, both computed here."""

from __future__ import annotations

import copy

import torch
from torch import nn

from grader.assignment import Assignment
from grader.checks.base import bad_reply_failure, item, listed, not_run, run_failure, scored
from grader.result import CheckResult, Series
from grader.session import BadReply, Run, Session
from grader.text import NAME_LIMIT, clean

ID, TITLE = "fold_batchnorm", "BatchNorm folding (makemore E02)"
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


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("fold")
    failure = run_failure(run, "fold_batchnorm(model)")
    if failure is not None:
        return not_run(ID, TITLE, a.max_points(ID), failure, "fold_batchnorm(model)")
    assert run is not None
    x = session.teacher_x
    with torch.no_grad():
        expected = copy.deepcopy(session.teacher).double()(x.double())
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
    metrics |= {"max_relative_error": error, "tolerance": a.batchnorm.tolerance, "consistent": consistent}
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
        detail = (
            f"The folded model's outputs differ from the original's by up to {error:.3g} (relative), "
            f"more than the tolerance {a.batchnorm.tolerance:g}; a correct fold differs by rounding only (below "
            "1e-6), so this is a mistake in the formula."
        )
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
