"""Check 2 (part 1): the sigma sweep of circle_model(sigma), the student's SIGMAS verified against what their own
model does, the comparison with their recommended init and Glorot, and the data-scaling effect."""

from __future__ import annotations

from grader.assignment import Assignment
from grader.checks.base import CheckSpec, bad_reply_failure, item, not_run, number, run_failure, scored
from grader.checks.circle import (
    REGIME_TEXT,
    CircleRun,
    circle_inputs,
    circle_model_request,
    circle_params,
    circle_runs,
    decision_grid,
    majority,
    median,
)
from grader.checks.prescribed import circle_faults, sigma_fault
from grader.result import CheckResult, Fact, Failure, Item, Series
from grader.session import BadReply, Made, RunSpec, Session

ID, TITLE = "sigma_sweep", "Part 1: sigma sweep"
ABOUT = (
    "Part 1 trains the small 2-6-3-2 network with every weight drawn from N(0, sigma). Too small a sigma leaves "
    "the activations and gradients tiny, so training idles at the chance level before it takes off; too large a "
    "sigma makes the network overconfident and kills ReLU units, and training settles on a poor solution. The "
    "grader trains your own circle_model over a grid of sigmas and several seeds, names the regime of every "
    "run with a fixed rule, and checks that your three SIGMAS behave as their names say. Scaling the inputs acts "
    "like scaling the first layer's weights, so your good sigma trained on scaled data shows the same regimes; "
    "too large a learning rate breaks training another way."
)
HINT = (
    "Read the sweep plot in the report: each grid sigma is marked with the regime your own circle_model(sigma) "
    "showed. Pick SIGMAS['small'] where the start is slow but the final accuracy is good, SIGMAS['good'] where "
    "training is quick and accurate, and SIGMAS['big'] where the loss at init is huge and training never fully "
    "recovers."
)


def _curve(name: str, r: CircleRun, **meta: object) -> list[Series]:
    return [
        Series(name=f"{name}.train_loss", x=r.steps, y=r.train_loss, meta=dict(meta)),
        Series(name=f"{name}.val_loss", x=r.val_steps, y=r.val_loss, meta=dict(meta)),
    ]


def _summary(runs: list[CircleRun]) -> dict:
    regime, counts = majority(runs)
    return {
        "regime": regime,
        "regime_counts": dict(counts),
        "final_val_loss": median([r.final_val_loss for r in runs]),
        "final_val_acc": median([r.final_val_acc for r in runs]),
        "loss_at_init": median([r.loss_at_init for r in runs]),
        "escape_step": median([float(r.escape_step) for r in runs if r.escape_step is not None]),
    }


def _verify(a: Assignment, label: str, sigma: float, runs: list[CircleRun], grid: dict[float, dict]) -> Item:
    regime, counts = majority(runs)
    n = len(runs)
    ok = counts[label] * 2 > n
    shown = ", ".join(f"{counts[k]} {k}" for k in counts)
    if ok:
        detail = f"SIGMAS['{label}'] = {sigma:g}: {counts[label]} of {n} seeds {REGIME_TEXT[label]}."
    else:
        fits = [s for s, summary in grid.items() if summary["regime"] == label]
        where = (
            f" In your sweep, sigma {', '.join(f'{s:g}' for s in fits)} behaved as '{label}'."
            if fits
            else f" No grid sigma behaved as '{label}' for your model."
        )
        detail = (
            f"SIGMAS['{label}'] = {sigma:g} should be '{label}' ({REGIME_TEXT[label]}), but over {n} seeds "
            f"your model gave: {shown}; most {REGIME_TEXT[regime]}.{where}"
        )
    return item(a, ID, label, f"SIGMAS['{label}']", ok, detail)


def training(run) -> str:
    """How the sandbox trained the sweep: all runs as one batched computation, or one model at a time (why)."""
    if run.reply.meta.get("batched") is True:
        return "batched (torch.func.vmap over the stacked parameters of every run)"
    reason = run.reply.meta.get("reason")
    return "one model at a time" + (f": {reason[:300]}" if isinstance(reason, str) else "")


def check(session: Session, a: Assignment) -> CheckResult:
    run = session.run("sweep")
    failure = run_failure(run, "circle_model(sigma)")
    if failure is not None:
        return not_run(ID, TITLE, a.max_points(ID), failure, "circle_model(sigma)")
    try:
        runs = circle_runs(session, "sweep")
    except BadReply as e:
        return not_run(ID, TITLE, a.max_points(ID), bad_reply_failure(e), "circle_model(sigma)")
    grid_runs: dict[float, list[CircleRun]] = {}
    for r in runs:
        if r.spec["label"] is None:
            grid_runs.setdefault(r.spec["sigma"], []).append(r)
    grid = {s: _summary(rs) for s, rs in grid_runs.items()}
    metrics: dict = {"grid": [{"sigma": s, **summary} for s, summary in grid.items()], "training": training(run)}
    series = [
        Series(
            name="sweep.final_val_loss",
            x=list(grid),
            y=[g["final_val_loss"] for g in grid.values()],
            meta={"regimes": [g["regime"] for g in grid.values()]},
        ),
        Series(
            name="sweep.final_val_acc",
            x=list(grid),
            y=[g["final_val_acc"] for g in grid.values()],
            meta={"regimes": [g["regime"] for g in grid.values()]},
        ),
    ]
    if not session.sigmas:
        failure = Failure(
            kind="missing_name",
            message="SIGMAS must be a dict with float values for 'small', "
            "'good' and 'big', e.g. SIGMAS = {'small': 0.1, 'good': 1.0, 'big': 5.0}.",
        )
        result = not_run(ID, TITLE, a.max_points(ID), failure, "Your SIGMAS")
        return result.model_copy(update={"metrics": metrics, "series": series})
    items = []
    for label in ("small", "good", "big"):
        labelled = [r for r in runs if r.spec["label"] == label]
        if label not in session.sigmas or not labelled:
            items.append(item(a, ID, label, f"SIGMAS['{label}']", False, f"SIGMAS has no '{label}' value."))
            continue
        fault = sigma_fault(session, f"circle.{label}", session.sigmas[label],
                            f"circle_model(SIGMAS[{label!r}] = {session.sigmas[label]:g})", biases=False)  # fmt: skip
        if fault is not None:  # the sigma was not what the model used: its runs say nothing about that sigma
            items.append(item(a, ID, label, f"SIGMAS['{label}']", False, fault))
        else:
            verified = _verify(a, label, session.sigmas[label], labelled, grid)
            faults = circle_faults(session)
            if not verified.passed and faults:  # name the model's fault before the sigma it makes look wrong
                detail = f"{faults[0]} That, not the sigma, is the likely cause: {verified.detail}"
                verified = verified.model_copy(update={"detail": detail})
            items.append(verified)
        metrics[f"sigma_{label}"] = {"sigma": session.sigmas[label], **_summary(labelled)}
        first = labelled[0]
        series += _curve(f"sigma_{label}", first, sigma=session.sigmas[label], seed=first.spec["seed"])
    _comparisons(session, runs, metrics, series)
    items += _probes(a, runs, metrics, series)
    note = ""
    if session.built.sigmas_note:
        note = f" Note: SIGMAS {session.built.sigmas_note}; only 'small', 'good' and 'big' are graded."
        metrics["sigmas_note"] = note.strip()
    return scored(
        ID,
        TITLE,
        items,
        hint=HINT,
        metrics=metrics,
        series=series,
        passed_message="Your three sigmas behave as the lab describes on your own model." + note,
    )


PROBES = (
    # label, spec field, metrics key, item title, how a value reads
    ("scale", "scale", "input_scales", "Data scaling: inputs times a factor", "inputs x{:g}"),
    ("lr", "lr", "learning_rates", "Too large a learning rate", "lr {:g}"),
)


#: what a regime means for a probe run (its sigma is fixed; "too small a sigma" would not be the reason)
PROBE_TEXT = {
    "stuck": "did not learn: the training loss never fell well below the chance level",
    "small": "started slowly, then reached a good solution",
    "good": "trained quickly to a good solution",
    "big": "started overconfident and converged to a poorer solution",
    "chaotic": "started overconfident and stayed near chance accuracy",
    "poor": "trained to a poor solution",
    "diverged": "diverged (NaN or infinite values)",
}


def _probes(a: Assignment, runs: list[CircleRun], metrics: dict, series: list[Series]) -> list[Item]:
    """Reported, not scored: SIGMAS['good'] trained on scaled inputs (the lab's "similar effect when scaling the
    data") and with larger learning rates (another simple way of breaking convergence), each value's regime by
    the same rule as the sweep."""
    items = []
    for label, field, key, title, shown in PROBES:
        probes = [r for r in runs if r.spec["label"] == label]
        if not probes:
            continue
        values = sorted({float(r.spec[field]) for r in probes})
        rows = []
        for v in values:
            these = [r for r in probes if float(r.spec[field]) == v]
            rows.append({field: v, **_summary(these)})
            series.extend(_curve(f"{label}_{v:g}", these[0], **{field: v}, seed=these[0].spec["seed"]))
        metrics[key] = rows
        said = "; ".join(
            f"{shown.format(r[field])}: {PROBE_TEXT[r['regime']]} (median accuracy {r['final_val_acc']:.0%})"
            for r in rows
        )
        sigma = probes[0].spec["sigma"]
        base = f"lr {a.circle.lr:g}" if label == "lr" else "the standardized inputs"
        items.append(item(a, ID, key, title, True,
                          f"SIGMAS['good'] = {sigma:g} (good with {base}) over {len(probes) // len(values)} seeds: "
                          f"{said}."))  # fmt: skip
    return items


def _boundary(name: str, r: CircleRun, session: Session) -> Series:
    assert r.grid_prob is not None
    d = session.circle_data
    # the training points in the grid's (raw) coordinates, with their class: the plot shows them over the boundary
    points = [[round(float(x1), 4), round(float(x2), 4), int(y)] for (x1, x2), y in
              zip(d.x_train_raw.tolist(), d.y_train.tolist(), strict=True)]  # fmt: skip
    return Series(
        name=f"boundary.{name}",
        values=r.grid_prob.tolist(),
        meta={
            "extent": list(decision_grid(session)[1]),
            "sigma": r.spec["sigma"],
            "seed": r.spec["seed"],
            "raw_inputs": r.spec["raw"],
            "points": points,
        },
    )


def _comparisons(session: Session, runs: list[CircleRun], metrics: dict, series: list[Series]) -> None:
    """Reported, not scored: the recommended init and Glorot beside the SIGMAS, decision boundaries, and the
    same models trained on raw (unscaled) inputs."""
    for r in runs:
        if r.grid_prob is not None:
            series.append(_boundary(r.spec["label"], r, session))
    glorot = [r for r in runs if r.spec["label"] == "glorot"]
    if glorot:
        metrics["glorot"] = _summary(glorot)
        series += _curve("glorot", glorot[0], seed=glorot[0].spec["seed"])
    raw = [r for r in runs if r.spec["label"] == "good_raw"]
    if raw:
        metrics["good_raw_inputs"] = _summary(raw)
        series += _curve("good_raw", raw[0], sigma=raw[0].spec["sigma"], seed=raw[0].spec["seed"])
    recommended = session.run("recommended")
    if recommended is None or recommended.failure is not None:
        return
    try:
        rec = circle_runs(session, "recommended")
    except BadReply:
        return
    scaled = [r for r in rec if not r.spec["raw"]]
    unscaled = [r for r in rec if r.spec["raw"]]
    metrics["recommended"] = _summary(scaled)
    metrics["recommended_raw_inputs"] = _summary(unscaled)
    series += _curve("recommended", scaled[0], seed=scaled[0].spec["seed"])
    series += _curve("recommended_raw", unscaled[0], seed=unscaled[0].spec["seed"])
    for r in scaled:
        if r.grid_prob is not None:
            series.append(_boundary("recommended", r, session))


# -- the unit: the models it builds, its run, its facts and figures ---------------------------------------------
def models(a: Assignment, mnist: bool) -> list[dict]:
    """circle_model over the sigma grid, for Glorot (re-initialised by the task) and for each SIGMAS label."""
    c = a.circle
    out = [circle_model_request(f"circle.g{j}.s{s}", s, args=[sigma]) for j, sigma in enumerate(c.sigma_grid)
           for s in c.seeds]  # fmt: skip
    for s in c.seeds:
        out.append(circle_model_request(f"circle.glorot.s{s}", s, args=[1.0]))
        out += [circle_model_request(f"circle.{label}.s{s}", s, label=label) for label in ("small", "good", "big")]
    return out


def sweep_runs(a: Assignment, sigmas: dict[str, float] | None) -> list[dict]:
    """The sigma grid, the student's SIGMAS, Glorot, the good sigma on scaled inputs and with larger learning
    rates, and on raw inputs, over the seeds."""
    c = a.circle
    runs = [{"sigma": s, "label": None, "key": f"circle.g{j}"} for j, s in enumerate(c.sigma_grid)]
    runs += [{"sigma": v, "label": k, "key": f"circle.{k}"} for k, v in (sigmas or {}).items()]
    out = [{"sigma": r["sigma"], "glorot": False, "seed": seed, "raw": False,
            "grid": r["label"] is not None and seed == c.seeds[0], "label": r["label"], "key": f"{r['key']}.s{seed}"}
           for r in runs for seed in c.seeds]  # fmt: skip
    out += [{"sigma": 1.0, "glorot": True, "seed": seed, "raw": False, "grid": seed == c.seeds[0], "label": "glorot",
             "key": f"circle.glorot.s{seed}"} for seed in c.seeds]  # fmt: skip
    if sigmas and "good" in sigmas:  # the data-scaling sweep and too large a learning rate
        for seed in c.seeds[: c.probe_seeds]:
            good = {"sigma": sigmas["good"], "glorot": False, "seed": seed, "raw": False, "grid": False,
                    "key": f"circle.good.s{seed}"}  # fmt: skip
            out += [{**good, "label": "scale", "scale": scale} for scale in c.input_scales]
            out += [{**good, "label": "lr", "lr": lr} for lr in c.large_lrs]
        out += [{"sigma": sigmas["good"], "glorot": False, "seed": seed, "raw": True, "grid": False,
                 "label": "good_raw", "key": f"circle.good.s{seed}"} for seed in c.seeds]  # fmt: skip
    return out


def _sweep(session: Session) -> Made:
    runs = sweep_runs(session.assignment, session.sigmas)
    return circle_params(session.assignment, runs), circle_inputs(session), [r["key"] for r in runs]


def facts(check: CheckResult) -> list[Fact]:
    m = check.metrics
    out: list[Fact] = []
    for key in ("small", "good", "big"):
        s = m.get(f"sigma_{key}")
        if s:
            counts = ", ".join(f"{n} {r}" for r, n in s["regime_counts"].items())
            out.append(Fact(f"SIGMAS['{key}'] = {s['sigma']:g}", key,
                            f"{counts}; final accuracy {number(s['final_val_acc'])}"))  # fmt: skip
    for key, label in (("recommended", "your init (sigma=None)"), ("glorot", "Glorot")):
        s = m.get(key)
        if s:
            out.append(Fact(label, "(reported)", f"{s['regime']}; final accuracy {number(s['final_val_acc'])}"))
    for key, field, label in (("input_scales", "scale", "SIGMAS['good'], inputs x{:g}"),
                              ("learning_rates", "lr", "SIGMAS['good'], lr {:g}")):  # fmt: skip
        for row in m.get(key, []):
            out.append(Fact(label.format(row[field]), "(reported)",
                            f"{row['regime']}; final accuracy {number(row['final_val_acc'])}"))  # fmt: skip
    return out


SPEC = CheckSpec(
    ID, TITLE, ("circle_model",), check, about=ABOUT, models=models,
    runs=(RunSpec("sweep", "circle_runs", _sweep, needs=("circle_model",)),),
    facts=facts,
    figures=(
        ("The sweep: each grid sigma coloured by the regime most of its seeds showed; your SIGMAS circled.", "sweep",
         {}),
        ("Loss curves (first seed) of your three sigmas, your recommended init and Glorot.", "sweep_curves", {}),
        ("Decision boundaries after training (first seed): P(ring) over the input plane, red for the ring and blue "
         "for the disc, with the boundary in black.", "boundaries", {}),
        ("Data scaling: the same models trained on raw, unscaled inputs.", "scaling", {}),
        ("SIGMAS['good'] on inputs scaled by a factor (the lab's data-scaling experiment) and with larger learning "
         "rates: the training loss of the first seed, and the regime most seeds showed.", "probes", {}),
    ),
)  # fmt: skip
