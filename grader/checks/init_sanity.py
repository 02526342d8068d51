"""Check 5 (makemore E01): every weight must receive gradient in the first steps, and no two hidden units may
start as exact copies of each other (then they get the same gradient forever: symmetry is never broken)."""

from __future__ import annotations

import re

import torch

from grader.assignment import Assignment
from grader.checks.activation_stats import INITS
from grader.checks.base import CheckSpec, bad_reply_failure, item, listed, not_run, run_failure, scored
from grader.checks.circle import circle_model_request
from grader.result import CheckResult, Fact, Item
from grader.session import BadReply, Made, Run, RunSpec, Session

ID, TITLE = "init_sanity", "Initialization sanity (makemore E01)"
ABOUT = (
    "A few training steps show whether gradient reaches every weight. With all weights zero, every hidden "
    "unit outputs the same value and passes back no gradient, so only the output bias learns (makemore E01); "
    "units that start as exact copies of each other receive identical updates and never become different. The "
    "grader shows E01 on your own network: circle_model(0.0) has every weight and bias at zero, and after "
    "training only the output bias may have changed."
)
# The MNIST nets are not looked at here: their prescribed init is the architecture check's, and their 2.5 M
# parameters (and gradients) would be most of this task's reply.
GROUPS = {"circle": "circle_model", "deep": "deep_model"}
HINT = (
    "Draw weights at random (e.g. nn.init.normal_ or the Kaiming/Glorot formulas); constant or all-zero weights "
    "make every unit of a layer compute the same thing, and with all-zero weights no gradient reaches any weight: "
    "only the output bias learns."
)
_NAME = re.compile(r"^[A-Za-z0-9_.]{1,200}$")


def duplicate_units(weight: torch.Tensor, bias: torch.Tensor | None) -> int:
    """How many units (rows) have an exact copy elsewhere in the layer, counting incoming weights and bias."""
    rows = weight if bias is None else torch.cat([weight, bias[:, None]], dim=1)
    _, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


def _units(run: Run, index: int, init: dict[str, torch.Tensor]) -> list[tuple[str, str | None, bool]]:
    """The model's linear layers (weight, bias, stored as (in, out)) in execution order, as the rebuilt model ran
    them; parameter order when the reply has none."""
    units = run.meta_dict(f"m{index}").get("units")
    if isinstance(units, list) and all(
        isinstance(u, list) and len(u) == 3 and u[0] in init and (u[1] is None or u[1] in init) for u in units
    ):
        return [(u[0], u[1], bool(u[2])) for u in units]
    return [(n, n.removesuffix("weight") + "bias", False) for n, t in init.items() if t.ndim == 2]


def model_problems(run: Run, index: int, label: str) -> tuple[list[str], dict]:
    names = run.meta_dict(f"m{index}").get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise BadReply(f"no valid parameter names for {label}")
    init = {n: run.tensor(f"m{index}.init.{n}") for n in names}
    grads = {n: run.tensor(f"m{index}.grad.{n}", tuple(init[n].shape), finite=False) for n in names}
    got_gradient = {n: bool((grads[n] != 0).any()) for n in names}  # NaN counts as gradient: it is not zero
    weights = [n for n in names if init[n].ndim == 2]
    frozen = [n for n in weights if not got_gradient[n]]
    problems = []
    units = run.meta_dict(f"m{index}").get("units")
    fixed = [u[0] for u in units if isinstance(u, list) and u and u[0] not in init] if isinstance(units, list) else []
    if fixed:
        problems.append(
            f"{label}: the weight(s) {listed([str(n)[:100] for n in fixed])} of its layers are not trainable "
            "parameters (buffers or fixed tensors), so they never learn. Register weights as nn.Parameter."
        )
    if frozen:
        learning = [n for n in names if got_gradient[n]]
        problems.append(
            f"{label}: {listed(frozen)} received no gradient in the first steps"
            + (f" (only {listed(learning)} got gradient)." if learning else " (no parameter got any).")
        )
    copies = {}
    for n, bias_name, transposed in _units(run, index, init)[:-1]:  # hidden layers, in the order forward runs
        # them (output units are told apart by their targets)
        copies[n] = duplicate_units(init[n].t() if transposed else init[n], init.get(bias_name or ""))
    copied = {n: c for n, c in copies.items() if c}
    if copied:
        problems.append(
            f"{label}: hidden units start as exact copies ("
            + listed([f"{c} of {init[n].shape[0]} units in {n}" for n, c in copied.items()])
            + "), so they stay identical: no symmetry breaking."
        )
    return problems, {"frozen": frozen, "duplicate_units": copies, "got_gradient": got_gradient}


def zero_init_item(run: Run, a: Assignment, labels: torch.Tensor) -> tuple[Item, dict]:
    """makemore E01 on the student's circle_model(0.0): every weight and bias starts at zero, and training moves
    only the output layer's bias (each hidden unit outputs ReLU(0) = 0 and passes back no gradient)."""
    models = run.params["models"]
    index = next((i for i, m in enumerate(models) if "train_steps" in m), None)
    title = "circle_model(0.0): only the output bias learns"
    if index is None:
        return item(a, ID, "zero_init", title, False, "circle_model is missing, so E01 could not be shown."), {}
    key, steps = models[index]["key"], models[index]["train_steps"]
    if key in run.params.get("failed", {}):
        return item(a, ID, "zero_init", title, False, f"circle_model(0.0) could not be built: "
                    f"{run.params['failed'][key]}"), {}  # fmt: skip
    names = run.meta_dict(f"m{index}").get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise BadReply("no valid parameter names for circle_model(0.0)")
    init = {n: run.tensor(f"m{index}.init.{n}") for n in names}
    final = {n: run.tensor(f"m{index}.final.{n}", tuple(init[n].shape), finite=False) for n in names}
    logits = run.tensor(f"m{index}.logits", (len(labels), 2), finite=False)
    units = _units(run, index, init)
    output_bias = units[-1][1] if units else None
    changed = [n for n in names if bool((final[n] != init[n]).any())]
    accuracy = float((logits.argmax(-1) == labels).double().mean())
    majority = float(torch.bincount(labels, minlength=2).max()) / len(labels)
    moved = {n: float((final[n] - init[n]).abs().max()) if final[n].numel() else 0.0 for n in names}
    metrics = {
        "moved": moved,  # the largest change of each parameter over training
        "changed": changed,
        "output_bias": output_bias,
        "accuracy": accuracy,
        "majority": majority,
        "steps": steps,
        "nonzero_at_init": {n: float(t.abs().max()) for n, t in init.items() if t.any()},
    }
    nonzero = metrics["nonzero_at_init"]
    if nonzero:
        worst = max(nonzero, key=nonzero.get)
        return item(a, ID, "zero_init", title, False, (
            f"circle_model(0.0) does not start at zero: {listed(list(nonzero))} "
            f"(|{worst}| up to {nonzero[worst]:.3g}). "
            "With sigma = 0 every weight is drawn from N(0, 0), so it is 0, and the biases are 0. A test such as "
            "`if sigma:` or `sigma or ...` treats 0 like None: test `if sigma is None:` instead."
        )), metrics  # fmt: skip
    if output_bias is None or changed != [output_bias]:
        return item(a, ID, "zero_init", title, False, (
            f"From all-zero weights, {steps} steps of SGD changed {listed(changed) or 'nothing'}; in the lab's "
            "ReLU network only the output bias "
            + (f"({output_bias}) " if output_bias else "(your output layer has none) ")
            + "can learn, since every hidden unit outputs ReLU(0) = 0 and passes back no gradient. Use ReLU "
            "between the layers and a bias in each nn.Linear."
        )), metrics  # fmt: skip
    return item(a, ID, "zero_init", title, True, (
        f"circle_model(0.0) starts with every weight and bias at zero; after {steps} steps of SGD only "
        f"{output_bias} has changed, so the network predicts the same class everywhere: training accuracy "
        f"{accuracy:.0%}, the share of the largest class ({majority:.0%}). Every hidden unit outputs 0 and "
        "passes back no gradient, so the hidden layers never learn (makemore E01)."
    )), metrics  # fmt: skip


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("sanity")
    failure = run_failure(run, "circle_model or deep_model")
    if failure is not None:
        return not_run(ID, TITLE, a.max_points(ID), failure, "Building your models")
    assert run is not None
    models = run.params["models"]
    items: list[Item] = []
    metrics: dict = {}
    for group, factory in GROUPS.items():
        indexes = [i for i, m in enumerate(models) if m["factory"] == factory and "train_steps" not in m]
        if not indexes:
            items.append(item(a, ID, group, factory, False, f"{factory} is missing, so it could not be checked."))
            continue
        problems: list[str] = []
        failed = run.params.get("failed", {})
        try:
            for i in indexes:
                label = f"{factory}({', '.join(repr(x) for x in models[i]['args'])})"
                if models[i].get("key") in failed:
                    problems.append(f"{label} could not be built: {failed[models[i]['key']]}")
                    continue
                found, metrics[label] = model_problems(run, i, label)
                problems += found
        except BadReply as e:
            problems.append(bad_reply_failure(e).message)
        items.append(
            item(
                a,
                ID,
                group,
                factory,
                not problems,
                " ".join(problems) or f"Every weight of {factory} learns and no hidden units are copies.",
            )
        )
    try:
        zero, metrics["zero_init"] = zero_init_item(run, a, session.circle_data.y_train)
    except BadReply as e:
        zero = item(a, ID, "zero_init", "circle_model(0.0): only the output bias learns", False,
                    bad_reply_failure(e).message)  # fmt: skip
    items.append(zero)
    return scored(
        ID,
        TITLE,
        items,
        hint=HINT,
        metrics=metrics,
        passed_message="Every weight receives gradient and every hidden unit starts different.",
    )


# -- the unit: the models it builds, its run and its facts ------------------------------------------------------
def models(a: Assignment, mnist: bool) -> list[dict]:
    """circle_model(0.0) for E01 (the other models it looks at are built for the other checks)."""
    return [circle_model_request(f"circle.zero.s{a.seed}", a.seed, args=[0.0])]


def _sanity(session: Session) -> Made | None:
    """A few SGD steps of every model the student chose or the lab prescribes an init for, and E01."""
    a, has = session.assignment, {n for n, kind in session.names.items() if kind == "function"}
    specs = []
    if "circle_model" in has:
        specs.append({"key": f"circle.none.s{a.seed}", "factory": "circle_model", "args": [None], "data": "circle",
                      "n_classes": 2})  # fmt: skip
        # makemore E01: all weights and biases zero (N(0, 0)), trained for longer: only the output bias learns
        specs.append({"key": f"circle.zero.s{a.seed}", "factory": "circle_model", "args": [0.0], "data": "circle",
                      "n_classes": 2, "train_steps": a.sanity.zero_steps})  # fmt: skip
    if "deep_model" in has:
        specs += [{"key": f"deep.{i}", "factory": "deep_model", "args": [i], "data": "circle", "n_classes": 2}
                  for i in INITS]  # fmt: skip
    if not specs:
        return None
    inputs = {"circle_x": session.circle_data.x_train, "circle_y": session.circle_data.y_train}
    params = {"models": specs, "steps": a.sanity.steps, "lr": a.sanity.lr, "seed": a.seed}
    return params, inputs, [m["key"] for m in specs]


def facts(check: CheckResult) -> list[Fact]:
    out: list[Fact] = []
    zero = check.metrics.get("zero_init")
    if zero:
        bias = zero["output_bias"]
        out.append(Fact(f"circle_model(0.0) after {zero['steps']} SGD steps: parameters that changed",
                        f"only the output bias ({bias})" if bias else "only the output bias",
                        f"{listed(zero['changed']) or 'none'}; accuracy {zero['accuracy']:.0%} "
                        f"(largest class {zero['majority']:.0%})"))  # fmt: skip
    for model, s in check.metrics.items():
        if model == "zero_init":
            continue
        frozen = ", ".join(s["frozen"]) or "none"
        copies = sum(s["duplicate_units"].values())
        out.append(Fact(model, "every weight gets gradient; no copied units",
                        f"no gradient: {frozen}; copied units: {copies}"))  # fmt: skip
    return out


SPEC = CheckSpec(
    ID, TITLE, (), check, about=ABOUT, models=models, runs=(RunSpec("sanity", "init_sanity", _sanity, each=True),),
    facts=facts,
    figures=(("makemore E01 on your network: how far each parameter of circle_model(0.0) moved in training (the "
              "largest change of any of its values); from all zeros only the output bias can learn.", "zero_init",
              {}),),
)  # fmt: skip
