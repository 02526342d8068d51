"""Check 1: the loss at initialization against -log(1/n_classes) for every classifier the student submits.

Scored where the student chose the init (circle_model(None)); reported where the lab prescribes it."""

from __future__ import annotations

import torch

from grader.assignment import Assignment
from grader.checks.activation_stats import deep_inputs
from grader.checks.base import (
    CheckSpec,
    bad_reply_failure,
    cross_entropy,
    item,
    not_run,
    number,
    run_failure,
    scored,
)
from grader.checks.circle import circle_inputs, circle_model_request, circle_params, circle_runs, median
from grader.checks.dropout import curve_size
from grader.checks.prescribed import circle_faults
from grader.result import CheckResult, Fact, Item, Series
from grader.session import BadReply, Made, RunSpec, Session, chance_loss

ID, TITLE = "loss_at_init", "Loss at initialization"
ABOUT = (
    "Before training, a classifier has no reason to prefer any class, so its softmax should be close to uniform "
    "and its cross-entropy close to ln(number of classes). A loss far above that level means the logits start "
    "large: the network is confidently wrong, and the first steps of training are spent only shrinking the "
    "output layer. Your recommended init is scored; the inits the lab prescribes are shown for comparison."
)
HINT = (
    "Make the output layer start small: scale the last Linear layer's weights down (e.g. multiply by 0.1 or "
    "0.01 after your init) and set its bias to 0, so the logits start near 0 and every class gets about the "
    "same probability."
)


def verdict(measured: float, n_classes: int) -> str:
    expected = chance_loss(n_classes)
    ratio = measured / expected
    if ratio > 1.5:
        return (
            f"{measured:.3g} is {ratio:.3g}x the expected {expected:.3f}: the output layer is overconfident at "
            "init (large logits), so training first spends steps shrinking them."
        )
    return f"{measured:.3g} against the expected {expected:.3f}."


def reported(item_id: str, title: str, measured: float, n_classes: int) -> Item:
    return Item(
        id=item_id,
        title=title,
        passed=True,
        points=0.0,
        max_points=0.0,
        detail=f"{title}: {verdict(measured, n_classes)} (prescribed init: reported, not scored)",
    )


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("recommended")
    failure = run_failure(run, "circle_model(sigma=None)")
    if failure is not None:
        return not_run(ID, TITLE, a.max_points(ID), failure, "circle_model(None)")
    try:
        runs = [r for r in circle_runs(session, "recommended") if not r.spec["raw"]]
    except BadReply as e:
        return not_run(ID, TITLE, a.max_points(ID), bad_reply_failure(e), "circle_model(None)")
    expected = chance_loss(2)
    losses = [r.loss_at_init for r in runs]
    measured = median(losses)
    gap = abs(measured - expected) / expected
    ok = gap <= a.init_loss.tolerance
    detail = f"circle_model(None): median loss at init over {len(runs)} seeds is {verdict(measured, 2)}" + (
        "" if ok else f" More than {a.init_loss.tolerance:.0%} off."
    )
    items = [item(a, ID, "circle_recommended", "circle_model(None), your recommended init", ok, detail)]
    rms = median(_logit_rms(run))
    small = rms <= a.init_loss.logit_rms
    items.append(
        item(
            a, ID, "output_small", "circle_model(None): the output layer starts small", small,
            f"circle_model(None): the logits at init have an RMS of {rms:.3g} (median over the seeds)"
            + (
                f", at most {a.init_loss.logit_rms:g}: no class starts out confidently wrong."
                if small
                else f"; the lab asks for at most {a.init_loss.logit_rms:g}. Scale the last layer's weights down "
                "(e.g. x0.1 or x0.01 after your init) and zero its bias, as in makemore, so that the logits start "
                "near 0 and the loss near ln 2 on every seed."
            ),
        )
    )  # fmt: skip
    faults = circle_faults(session)
    if faults:  # name the model's own fault before the init it makes look wrong
        items = [
            i
            if i.passed
            else i.model_copy(
                update={"detail": f"{faults[0]} That, not the init, is the likely cause: {i.detail}"}
            )  # fmt: skip
            for i in items
        ]
    metrics: dict = {
        "expected": expected, "circle_recommended": {"median": measured, "per_seed": losses}, "logit_rms": rms,
    }  # fmt: skip
    items += _reported_items(session, metrics)
    loss_items = [i for i in items if i.id != "output_small"]
    series = [
        Series(
            name="loss_at_init",
            x=list(range(len(loss_items))),
            y=[_measured(metrics, i.id) for i in loss_items],
            meta={"labels": [i.title for i in loss_items], "expected": [_expected(metrics, i.id) for i in loss_items]},
        )
    ]
    return scored(
        ID,
        TITLE,
        items,
        hint=HINT,
        metrics=metrics,
        series=series,
        passed_message=f"Your recommended init starts at loss {measured:.3f}, close to ln 2 = {expected:.3f}, with "
        f"small logits (RMS {rms:.2g}).",
    )


def _logit_rms(run) -> list[float]:
    """RMS of the training logits at step 0 of each scaled-input recommended run."""
    out = []
    for i, spec in enumerate(run.params["runs"]):
        if not spec["raw"]:
            logits = run.tensor(f"run{i}.train", (None, None, 2), finite=False)[0]
            out.append(float(logits.pow(2).mean().sqrt()) if torch.isfinite(logits).all() else float("inf"))
    return out


def _measured(metrics: dict, item_id: str) -> float | None:
    value = metrics.get(item_id, {}).get("median")
    return value if value is None or value == value else None


def _expected(metrics: dict, item_id: str) -> float:
    return metrics.get(item_id, {}).get("expected", metrics["expected"])


def _reported_items(session: Session, metrics: dict) -> list[Item]:
    """Loss at init of the models whose init the lab prescribes, where their runs succeeded."""
    items: list[Item] = []
    sweep = session.run("sweep")
    if sweep is not None and sweep.failure is None and session.sigmas:
        try:
            runs = circle_runs(session, "sweep")
        except BadReply:
            runs = []
        for label, sigma in session.sigmas.items():
            losses = [r.loss_at_init for r in runs if r.spec.get("label") == label and not r.spec["raw"]]
            if losses:
                key = f"circle_sigma_{label}"
                metrics[key] = {"median": median(losses), "expected": chance_loss(2)}
                items.append(reported(key, f"circle_model({sigma:g}) (SIGMAS['{label}'])", median(losses), 2))
    deep = session.run("deep")
    if deep is not None and deep.failure is None:
        for init in ("normal", "xavier", "kaiming"):
            try:
                labels = deep_inputs(session).y
                logits = deep.tensor(f"{init}.logits", (len(labels), 2), finite=False)
            except BadReply:
                continue
            loss = cross_entropy(logits, labels)
            key = f"deep_{init}"
            metrics[key] = {"median": loss, "expected": chance_loss(2)}
            items.append(reported(key, f"deep_model('{init}')", loss, 2))
    for variant, dropout in (("plain", False), ("dropout", True)):
        run = session.run(f"mnist_{variant}")
        if run is None or run.failure is not None or session.mnist_data is None:
            continue
        try:
            n = curve_size(session.assignment, len(session.mnist_data.y_val))
            logits = run.tensor("val_logits", (None, n, 10), finite=False)[0]
        except BadReply:
            continue
        loss = cross_entropy(logits, session.mnist_data.y_val[:n])
        key = f"mnist_{variant}"
        metrics[key] = {"median": loss, "expected": chance_loss(10)}
        items.append(reported(key, f"mnist_model({dropout})", loss, 10))
    return items


# -- the unit: the models it builds, its run, its facts and figures ---------------------------------------------
def models(a: Assignment, mnist: bool) -> list[dict]:
    """circle_model(None) for every seed of the runs, and for the grading's own seed (init_sanity's model)."""
    return [circle_model_request(f"circle.none.s{s}", s, args=[None]) for s in dict.fromkeys([*a.circle.seeds, a.seed])]


def recommended_runs(a: Assignment) -> list[dict]:
    """circle_model(None) over the seeds (scaled inputs), then on raw inputs: the student's own init."""
    seeds = a.circle.seeds
    return [
        *({"sigma": None, "glorot": False, "seed": s, "raw": False, "grid": s == seeds[0],
           "key": f"circle.none.s{s}"} for s in seeds),
        *({"sigma": None, "glorot": False, "seed": s, "raw": True, "grid": False, "key": f"circle.none.s{s}"}
          for s in seeds),
    ]  # fmt: skip


def _recommended(session: Session) -> Made:
    runs = recommended_runs(session.assignment)
    return circle_params(session.assignment, runs), circle_inputs(session), [r["key"] for r in runs]


def facts(check: CheckResult) -> list[Fact]:
    m = check.metrics
    if "circle_recommended" not in m:
        return []
    return [
        Fact("circle_model(None), median over seeds", number(m["expected"]), number(m["circle_recommended"]["median"]))
    ]


SPEC = CheckSpec(
    ID, TITLE, ("circle_model",), check, about=ABOUT, models=models,
    runs=(RunSpec("recommended", "circle_runs", _recommended, needs=("circle_model",)),),
    facts=facts,
    figures=(("Loss at init of each submitted classifier against ln(number of classes).", "loss_at_init", {}),),
)  # fmt: skip
