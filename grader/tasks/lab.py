"""The lab's tasks, run on the trusted side on models rebuilt from their captured graphs.

No student code runs in the process that runs these: the models are grader.graph.rebuild.GraphModel instances,
which run only whitelisted torch operations on the tensors the sandbox captured. Tasks train the models with
the lab's recipe and return raw data (logits, activations, weights) that the checks score. Each task is
fn(models, params, inputs) -> (meta, tensors), where ``models.get(key)`` rebuilds a fresh copy of a captured model.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grader.graph import ops
from grader.graph.rebuild import GraphModel, traced
from grader.graph.schema import GraphError, validate_graph
from grader.sandbox.protocol import PROGRESS_FD, ContractError

Tensors = dict[str, torch.Tensor]


_SPAN = [0.0, 1.0]  # the share of the child's work the running task stands for (a part of a bundle: less)


def report_progress(done: int, total: int) -> None:
    """Tell the grading side how far the task is (a fixed-width line over the last one, in the progress file the
    parent opened). Display only: a student who breaks this only loses their progress bar."""
    if _SPAN != [0.0, 1.0] and total > 0:
        done, total = round(1000 * (_SPAN[0] + (_SPAN[1] - _SPAN[0]) * min(done / total, 1.0))), 1000
    with suppress(OSError):
        os.pwrite(PROGRESS_FD, f"{done} {total}".ljust(31).encode() + b"\n", 0)


class Models:
    """The captured models a task may use: ``get(key)`` rebuilds a fresh copy (training changes it)."""

    def __init__(self, params: dict, inputs: Tensors) -> None:
        self._graphs = params.get("graphs", {})
        self._inputs = inputs
        self._shown = params.get("shown", {})

    def shown(self, key: str) -> str:
        return str(self._shown.get(key, key))

    def get(self, key: str) -> GraphModel:
        if key not in self._graphs:
            raise ContractError(f"{self.shown(key)} was not built")
        graph = validate_graph(self._graphs[key])
        prefix = f"{key}/"
        state = {k.removeprefix(prefix): v for k, v in self._inputs.items() if k.startswith(prefix)}
        try:
            return GraphModel(graph, state)
        except GraphError as e:
            raise ContractError(f"{self.shown(key)}: {e}") from None


def logits_of(model: nn.Module, x: torch.Tensor, n_classes: int, what: str) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise ContractError(f"{what} must return a tensor of logits, but returned {type(out).__name__}.")
    if tuple(out.shape) != (x.shape[0], n_classes):
        raise ContractError(
            f"{what} must return logits of shape (batch, {n_classes}); for a batch of shape {tuple(x.shape)} "
            f"it returned {tuple(out.shape)}."
        )
    return out


def _reinit_glorot(model: GraphModel) -> None:
    """Glorot-normal weights and zero biases in every linear unit (std sqrt(2 / (fan_in + fan_out)), which
    reads the same either way round)."""
    with torch.no_grad():
        for unit in model.units(training=True):
            nn.init.xavier_normal_(model.tensor(unit.weight))
            if unit.bias is not None:
                nn.init.zeros_(model.tensor(unit.bias))


def circle_runs(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """Part 1: full-batch SGD on the circle task for each run spec {sigma, glorot, seed, raw, grid, and optional
    scale (of the inputs) and lr}; returns
    the training-set logits at `log_steps`, validation logits at `val_steps` and decision-grid logits at the end.
    All runs train as one batched computation (torch.func.vmap over stacked parameters) when the student's
    models allow it; otherwise, one model at a time, and the meta says why."""
    reason = "batching is switched off for this task" if not params.get("batched", True) else None
    if reason is None:
        built = [_circle_model(models, run) for run in params["runs"]]
        reason = _why_not_batched(built)
    if reason is None:
        try:
            return {"batched": True}, _circle_runs_batched(built, params, inputs)
        except ContractError:
            raise
        except Exception as e:  # an operation vmap cannot batch: the loop below still grades the model
            reason = f"batched training failed ({type(e).__name__}: {str(e)[:200]})"
    return {"batched": False, "reason": reason}, _circle_runs_loop(models, params, inputs)


def _circle_model(models: Models, run: dict) -> GraphModel:
    model = models.get(run["key"])
    if run["glorot"]:
        torch.manual_seed(run["seed"])
        _reinit_glorot(model)
    return model


def _why_not_batched(models: list[GraphModel]) -> str | None:
    """None when every model runs the same graph on parameters of the same names, shapes and dtypes, and
    nothing whose behaviour depends on the batch or on randomness (buffers, dropout, batch norm)."""
    first = models[0]
    signature = [(n, p.shape, p.dtype) for n, p in first.named_parameters()]
    for m in models:
        if m.graph != first.graph or [(n, p.shape, p.dtype) for n, p in m.named_parameters()] != signature:
            return "circle_model returns models of different structure for different sigmas"
        if any(True for _ in m.buffers()):
            return "the model has buffers (batch norm, running statistics or fixed tensors)"
        if any(op in ops.RANDOM for op in m.ops(True)):
            return "the model uses dropout or other random operations"
    return None


def _circle_runs_batched(models: list[GraphModel], params: dict, inputs: Tensors) -> Tensors:
    """Every run at once: the parameters of all models stacked on a leading axis, one vmapped forward and
    gradient per step, and the same SGD update (p - lr * grad) that torch.optim.SGD makes."""
    from torch.func import functional_call, stack_module_state, vmap

    runs, steps, lr = params["runs"], int(params["steps"]), float(params["lr"])
    log_steps, val_steps = set(params["log_steps"]), set(params["val_steps"])
    stacked, _ = stack_module_state(models)
    names = list(stacked)
    weights = [stacked[k].detach().requires_grad_(True) for k in names]  # (R, ...) each
    base = models[0]
    # a run may scale its inputs (the data-scaling sweep) and have a learning rate of its own
    x = torch.stack([inputs["x_train_raw" if r["raw"] else "x_train"] * r.get("scale", 1.0) for r in runs])  # (R, N, 2)
    x_val = torch.stack([inputs["x_val_raw" if r["raw"] else "x_val"] * r.get("scale", 1.0) for r in runs])  # (R, M, 2)
    run_lrs = [float(r.get("lr", lr)) for r in runs]
    groups = [(value, torch.tensor([v == value for v in run_lrs])) for value in dict.fromkeys(run_lrs)]
    y = inputs["y_train"].repeat(len(runs))  # (R * N,)

    def forward(ws: tuple[torch.Tensor, ...], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(base, dict(zip(names, ws, strict=True)), (xb,))

    batched = vmap(forward)
    train_logits, val_logits = [], []
    base.train()
    for step in range(steps + 1):
        if step % 50 == 0:
            report_progress(step, steps)
        logits = batched(tuple(weights), x)  # (R, N, 2)
        if step == 0 and tuple(logits.shape) != (len(runs), x.shape[1], 2):
            raise ContractError(f"circle_model must return logits of shape (batch, 2); it returned "
                                f"{tuple(logits.shape[1:])}.")  # fmt: skip
        if step in log_steps:
            train_logits.append(logits.detach())
        if step in val_steps:
            with torch.no_grad():
                val_logits.append(batched(tuple(weights), x_val))
        if step == steps:
            break
        # the runs are independent: the gradient of the sum of their mean losses is each run's own gradient
        per_run = F.cross_entropy(logits.reshape(-1, 2), y, reduction="none").view(len(runs), -1).mean(dim=1)
        grads = torch.autograd.grad(per_run.sum(), weights)
        with torch.no_grad():
            for w, g in zip(weights, grads, strict=True):
                if len(groups) == 1:
                    w.add_(g, alpha=-groups[0][0])  # exactly what torch.optim.SGD does
                    continue
                for value, mask in groups:  # the same, for the runs of each learning rate
                    w.copy_(torch.where(mask.view(-1, *[1] * (g.ndim - 1)), w.add(g, alpha=-value), w))
    weights_of = [dict(zip(names, (w[i].detach() for w in weights), strict=True)) for i in range(len(runs))]
    out: Tensors = {}
    train, val = torch.stack(train_logits, dim=1), torch.stack(val_logits, dim=1)  # (R, T, N, 2)
    for i, run in enumerate(runs):
        out[f"run{i}.train"], out[f"run{i}.val"] = train[i], val[i]
        if run["grid"]:
            grid = inputs["grid_raw" if run["raw"] else "grid"] * run.get("scale", 1.0)
            with torch.no_grad():
                out[f"run{i}.grid"] = functional_call(base, weights_of[i], (grid,))
    return out


def _circle_runs_loop(models: Models, params: dict, inputs: Tensors) -> Tensors:
    """The lab's own way: one model after the other, torch.optim.SGD."""
    steps, lr = int(params["steps"]), float(params["lr"])
    log_steps, val_steps = set(params["log_steps"]), set(params["val_steps"])
    out: Tensors = {}
    for i, run in enumerate(params["runs"]):
        report_progress(i, len(params["runs"]))
        suffix, scale = "_raw" if run["raw"] else "", run.get("scale", 1.0)
        x, y, x_val = inputs["x_train" + suffix] * scale, inputs["y_train"], inputs["x_val" + suffix] * scale
        model = _circle_model(models, run)
        what = models.shown(run["key"])
        opt = torch.optim.SGD(model.parameters(), lr=float(run.get("lr", lr)))
        train_logits, val_logits = [], []
        for step in range(steps + 1):
            model.train()
            logits = logits_of(model, x, 2, what)
            if step in log_steps:
                train_logits.append(logits.detach())
            if step in val_steps:
                model.eval()
                with torch.no_grad():
                    val_logits.append(logits_of(model, x_val, 2, what))
            if step == steps:
                break
            opt.zero_grad()
            F.cross_entropy(logits, y).backward()
            opt.step()
        out[f"run{i}.train"] = torch.stack(train_logits)
        out[f"run{i}.val"] = torch.stack(val_logits)
        if run["grid"]:
            model.eval()
            with torch.no_grad():
                out[f"run{i}.grid"] = logits_of(model, inputs["grid" + suffix] * scale, 2, what)
    return out


#: what `layer_stats` measures of a linear layer's output z and of the gradient reaching it, in this order
LAYER_STATS = ("rms", "abs_mean", "abs_std", "grad_rms", "grad_abs_mean", "grad_abs_std")


def layer_stats(z: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """Part 2's statistics of one layer's output over the sample, in float64 (NaN for a missing gradient): the
    parent gets these, not the 2048 x 100 values of every layer (20 layers, three inits, and their gradients
    would be 100 MB to write and read back)."""

    def three(t: torch.Tensor | None) -> list[torch.Tensor]:
        if t is None:
            return [torch.tensor(math.nan, dtype=torch.float64)] * 3
        t = t.detach().double()
        return [t.pow(2).mean().sqrt(), t.abs().mean(), t.abs().std()]

    return torch.stack([*three(z), *three(grad)])


def deep_stats(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """Part 2: for each init, one forward pass of the untrained deep net on a large sample and one backward
    pass of the parent's random cotangent; returns the statistics of every Linear layer's output and of its
    gradient (LAYER_STATS), the logits, and every layer's weights and bias."""
    x, cotangent = inputs["x"], inputs["cotangent"]
    out: Tensors = {}
    meta: dict[str, Any] = {}
    for i, init in enumerate(params["inits"]):
        report_progress(i, len(params["inits"]))
        if f"deep.{init}" in params.get("failed", {}):
            continue  # its build failed: the check says so for this init, and measures the others
        model = models.get(f"deep.{init}")
        model.train()
        with traced(model, grads=True) as trace:
            logits = logits_of(model, x, 2, f"deep_model({init!r})")
            logits.backward(cotangent)
        if not trace.units:
            raise ContractError(f"deep_model({init!r}) must be built from nn.Linear layers; none was called.")
        out[f"{init}.stats"] = torch.stack(
            [layer_stats(trace.outputs[k], trace.output_grads.get(k)) for k in range(len(trace.units))]
        )
        out[f"{init}.logits"] = trace.outputs[-1].detach()
        for k, unit in enumerate(trace.units):
            out[f"{init}.w{k}"] = model.weight(unit).detach()
            bias = model.bias(unit)
            if bias is not None:
                out[f"{init}.b{k}"] = bias.detach()
        meta[init] = {"layers": len(trace.units)}
    return meta, out


def _diagnostics(model: GraphModel, x: torch.Tensor, y: torch.Tensor, prefix: str, out: Tensors) -> None:
    """Raw data for the makemore diagnostics: each hidden activation (the input of linear unit k >= 1), the
    gradient of the loss reaching it, and each weight's gradient."""
    model.zero_grad()
    with traced(model, keep_graph=True) as trace:
        logits = model(x)
        for a in trace.inputs:
            if a.requires_grad:
                a.retain_grad()
        F.cross_entropy(logits, y).backward()
    for k, a in enumerate(trace.inputs[1:], start=1):
        out[f"{prefix}.act{k}"] = a.detach()
        if a.grad is not None:
            out[f"{prefix}.actgrad{k}"] = a.grad.detach()
    for k, unit in enumerate(trace.units):
        grad = model.weight_grad(unit)
        if grad is not None:
            out[f"{prefix}.wgrad{k}"] = grad.detach().clone()
            out[f"{prefix}.w{k}"] = model.weight(unit).detach().clone()
    model.zero_grad()


def _dropout_probe(model: GraphModel, x: torch.Tensor, seed: int, out: Tensors) -> None:
    """Two eval-mode and two train-mode passes of the same batch, with every Linear's input and output, so that
    the parent measures where dropout acts, at which rate and with which scaling."""
    for name, train in (("eval0", False), ("eval1", False), ("train0", True), ("train1", True)):
        model.train(train)
        torch.manual_seed(seed + len(out))
        with torch.no_grad(), traced(model) as trace:
            out[f"probe.{name}.logits"] = logits_of(model, x, 10, "mnist_model")
        for k in range(len(trace.units)):
            out[f"probe.{name}.in{k}"] = trace.inputs[k]
            out[f"probe.{name}.out{k}"] = trace.outputs[k]


def _eval_logits(model: GraphModel, x: torch.Tensor, batch: int = 2500) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([logits_of(model, x[i : i + batch], 10, "mnist_model") for i in range(0, len(x), batch)])


def _adamw(model: GraphModel, lr: float) -> torch.optim.Optimizer:
    """AdamW with torch's fused kernel (one pass over each tensor; on this CPU a step takes a quarter of the
    default's time, the same update up to float rounding); the default one where the parameters do not allow it."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=lr)


def mnist_train(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """Part 3: the dropout probe at init, AdamW training with eval-mode logits on the curve subsets after every
    epoch and on the full sets at the end, makemore diagnostics at init and at the end, the update:data ratio
    every `ratio_every` steps, and `mc_passes` train-mode passes over the MC subset."""
    seed, epochs, batch = int(params["seed"]), int(params["epochs"]), int(params["batch_size"])
    device = torch.device(params.get("device", "cpu"))
    x, y, x_val = (inputs[k].to(device) for k in ("x_train", "y_train", "x_val"))
    x_curve, x_val_curve = x[: int(params["curve_train"])], x_val[: int(params["curve_val"])]
    ratio_every = max(1, int(params["ratio_every"]))
    x_diag, y_diag = x[: params["diag_size"]], y[: params["diag_size"]]
    seconds = {"train": 0.0, "curves": 0.0, "mc": 0.0}  # where the time goes (display and benchmarks only)
    model = models.get(f"mnist.{'dropout' if params['dropout'] else 'plain'}")
    torch.manual_seed(seed)
    out: Tensors = {}
    _dropout_probe(model, inputs["x_probe"], seed, out)
    model.to(device)  # built and probed on the CPU, trained where the grader runs (the same weights either way)
    model.eval()  # the diagnostics in eval mode: with dropout on, dropped values would look like dead units
    _diagnostics(model, x_diag, y_diag, "diag.init", out)
    train_logits, val_logits = [_eval_logits(model, x_curve)], [_eval_logits(model, x_val_curve)]
    opt = _adamw(model, float(params["lr"]))
    weights = [p for p in model.parameters() if p.ndim == 2]
    before = [torch.empty_like(w) for w in weights]  # reused buffers: one copy per weight and step, no allocation
    ratios: list[list[float]] = []
    g = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        report_progress(epoch, epochs + 1)
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=g).to(device)  # the CPU generator: the same order on any device
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(logits_of(model, x[idx], 10, "mnist_model"), y[idx])
            opt.zero_grad()
            loss.backward()
            keep = step % ratio_every == 0
            if keep:
                for b, w in zip(before, weights, strict=True):
                    b.copy_(w.detach())
            opt.step()
            if keep:
                # update:data ratio (makemore): log10(std(update) / std(weights)); reported, never scored
                with torch.no_grad():
                    ratios.append(
                        [
                            math.log10(max(float(b.sub_(w).std() / w.std()), 1e-30))
                            for w, b in zip(weights, before, strict=True)
                        ]
                    )
            step += 1
        t1 = time.perf_counter()
        seconds["train"] += t1 - t0
        if epoch < epochs - 1:
            train_logits.append(_eval_logits(model, x_curve))
            val_logits.append(_eval_logits(model, x_val_curve))
        seconds["curves"] += time.perf_counter() - t1
    t1 = time.perf_counter()
    final_train, final_val = _eval_logits(model, x), _eval_logits(model, x_val)
    seconds["curves"] += time.perf_counter() - t1
    if epochs:
        train_logits.append(final_train[: len(x_curve)])
        val_logits.append(final_val[: len(x_val_curve)])
    model.eval()
    _diagnostics(model, x_diag, y_diag, "diag.final", out)
    out["train_logits"] = torch.stack(train_logits)
    out["val_logits"] = torch.stack(val_logits)
    out["final_train_logits"], out["final_val_logits"] = final_train, final_val
    out["update_ratio"] = torch.tensor(ratios, dtype=torch.float32).reshape(len(ratios), len(weights))
    report_progress(epochs, epochs + 1)
    model.train()
    t1 = time.perf_counter()
    x_mc = inputs["x_mc"].to(device)
    ks = [int(k) for k in params["mc_ks"]]
    total = torch.zeros(len(x_mc), 10, dtype=torch.float64, device=device)  # running sum of the passes' logits
    predictions = []
    with torch.no_grad():
        for k in range(1, ks[-1] + 1):
            total += logits_of(model, x_mc, 10, "mnist_model").double()
            if k in ks:  # the ensemble of the first k passes: argmax of the mean = argmax of the sum
                predictions.append(total.argmax(-1).cpu())
    seconds["mc"] = time.perf_counter() - t1
    out["mc_predictions"] = torch.stack(predictions).to(torch.int32)  # (len(ks), images)
    return {"seconds": seconds}, out


def init_sanity(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """makemore E01: each model's parameters at init and the sum of |gradient| over a few SGD steps on training
    data (the parent finds the parameters that never get any gradient and the hidden units that are copies)."""
    out: Tensors = {}
    meta: dict[str, Any] = {}
    for i, spec in enumerate(params["models"]):
        report_progress(i, len(params["models"]))
        if spec["key"] in params.get("failed", {}):
            continue  # its build failed: the check reports that model's failure, the others are measured
        model = models.get(spec["key"])
        torch.manual_seed(int(params["seed"]))
        x, y = inputs[f"{spec['data']}_x"], inputs[f"{spec['data']}_y"]
        names = [n for n, _ in model.named_parameters()]
        units = [[u.weight, u.bias, u.transposed] for u in model.units(training=True)]
        meta[f"m{i}"] = {"names": names, "units": units}  # the layers in the order forward runs them
        for n, p in model.named_parameters():
            out[f"m{i}.init.{n}"] = p.detach().clone()
        opt = torch.optim.SGD(model.parameters(), lr=float(params["lr"]))
        grad_sum = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        model.train()
        for _ in range(int(params["steps"])):
            opt.zero_grad()
            what = models.shown(spec["key"])
            F.cross_entropy(logits_of(model, x, spec["n_classes"], what), y).backward()
            for n, p in model.named_parameters():
                if p.grad is not None:
                    grad_sum[n] += p.grad.detach().abs()
            opt.step()
        for n, g in grad_sum.items():
            out[f"m{i}.grad.{n}"] = g
        for _ in range(int(spec.get("train_steps", 0)) - int(params["steps"])):  # E01: train on, then look again
            opt.zero_grad()
            F.cross_entropy(logits_of(model, x, spec["n_classes"], what), y).backward()
            opt.step()
        if "train_steps" in spec:
            for n, p in model.named_parameters():
                out[f"m{i}.final.{n}"] = p.detach().clone()
            with torch.no_grad():
                out[f"m{i}.logits"] = logits_of(model, x, spec["n_classes"], what)
    return meta, out


def fold_batchnorm(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """makemore E02: run the model the student's fold returned (rebuilt from its graph) on the grader's inputs;
    returns its outputs, the layers it runs (in order) and each linear unit's weight and bias."""
    folded = models.get("fold")
    folded.eval()
    with torch.no_grad():
        y = folded(inputs["x"])
    out: Tensors = {"y": y}
    layers = []
    units = iter(folded.units(training=False))
    for op in folded.ops(training=False):
        k = len(layers)
        if op == "linear":
            unit = next(units)
            layers.append({"type": "Linear", "torch": True})
            out[f"layer{k}.weight"] = folded.weight(unit).detach()
            bias = folded.bias(unit)
            if bias is not None:
                out[f"layer{k}.bias"] = bias.detach()
        elif op in _LAYER_OPS:
            layers.append({"type": _LAYER_OPS[op], "torch": True})
        elif op not in _SHAPE_OPS:
            layers.append({"type": op, "torch": False})
    return {"layers": layers}, out


_LAYER_OPS = {"F.tanh": "Tanh", "torch.tanh": "Tanh", "Tensor.tanh": "Tanh", "F.batch_norm": "BatchNorm1d",
              "torch.batch_norm": "BatchNorm1d"}  # fmt: skip
_SHAPE_OPS = {
    "Tensor.T", "Tensor.t", "Tensor.view", "Tensor.reshape", "Tensor.flatten", "torch.t", "Tensor.mT",
    "Tensor.contiguous", "Tensor.clone", "Tensor.detach", "Tensor.data", "F.dropout",
}  # fmt: skip


def tanh_stats(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """makemore's tanh network, each model of params["keys"] in train mode (batch statistics, as in makemore) on
    standardized images: at init, how much a random constant per unit added to each hidden linear unit's output
    changes the next unit's input (rounding only through a batch norm: a bias there never learns), each bias's
    gradient and whether tanh runs between the units; the makemore diagnostics at init and after `steps` of SGD,
    with the update:data ratio every `ratio_every` steps."""
    out: Tensors = {}
    meta: dict[str, Any] = {}
    keys = [k for k in params["keys"] if k not in params.get("failed", {})]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 32: more threads only wait for each other (2 busy cores: 30 s CPU, not 2.3)
    try:
        for i, key in enumerate(keys):
            report_progress(i, len(keys))
            _tanh_model(models, key, params, inputs, out, meta)
    finally:
        torch.set_num_threads(threads)
    return meta, out


def _tanh_model(models: Models, key: str, params: dict, inputs: Tensors, out: Tensors, meta: dict) -> None:
    """One model of tanh_stats: its data at init, then SGD on random batches of the training images."""
    seed, steps, batch = int(params["seed"]), int(params["steps"]), int(params["batch_size"])
    x, y = inputs["x_train"], inputs["y_train"]
    x_diag, y_diag = x[: int(params["diag_size"])], y[: int(params["diag_size"])]
    ratio_every = max(1, int(params["ratio_every"]))
    model, shown = models.get(key), models.shown(key)
    torch.manual_seed(seed)
    model.train()
    with traced(model, grads=True) as trace:
        F.cross_entropy(logits_of(model, x_diag, 10, shown), y_diag).backward()
    if not trace.units:
        raise ContractError(f"{shown} must be built from nn.Linear layers; none was called.")
    for k, unit in enumerate(trace.units):
        bias = model.bias(unit)
        if bias is not None and bias.grad is not None:
            out[f"{key}.biasgrad{k}"] = bias.grad.detach().clone()
    between = [a.shape == b.shape and bool(torch.allclose(a, torch.tanh(b), atol=1e-6, rtol=1e-5))
               for a, b in zip(trace.inputs[1:], trace.outputs[:-1], strict=True)]  # fmt: skip
    meta[key] = {"units": [[u.weight, u.bias] for u in trace.units], "tanh_between": between}
    for k in range(len(trace.units) - 1):
        out[f"{key}.shift{k}"] = _shifted(model, x_diag, k, trace.inputs[k + 1])
    _diagnostics(model, x_diag, y_diag, f"{key}.diag.init", out)
    opt = torch.optim.SGD(model.parameters(), lr=float(params["lr"]))
    weights = [p for p in model.parameters() if p.ndim == 2]
    ratios: list[list[float]] = []
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        opt.zero_grad()
        F.cross_entropy(logits_of(model, x[idx], 10, shown), y[idx]).backward()
        keep = step % ratio_every == 0
        before = [w.detach().clone() for w in weights] if keep else []
        opt.step()
        if keep:  # update:data ratio (makemore): log10(std(update) / std(weights)); reported, never scored
            with torch.no_grad():
                ratios.append([math.log10(max(float((b - w).std() / w.std()), 1e-30))
                               for w, b in zip(weights, before, strict=True)])  # fmt: skip
    model.train()
    _diagnostics(model, x_diag, y_diag, f"{key}.diag.final", out)
    out[f"{key}.update_ratio"] = torch.tensor(ratios, dtype=torch.float32).reshape(len(ratios), len(weights))


def _shifted(model: GraphModel, x: torch.Tensor, k: int, before: torch.Tensor) -> torch.Tensor:
    """How much the input of linear unit k + 1 changes when a random constant per feature is added to the output
    of unit k (train mode), and its size: (max |change|, max |input|). A batch norm in between subtracts the
    batch mean, so the change is rounding; so is a bias's effect there, and its gradient is zero."""
    seen: list[torch.Tensor] = []

    def shift(j: int, _unit: Any, inp: torch.Tensor, out: torch.Tensor) -> None:
        if j == k:
            out.add_(torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(k), dtype=out.dtype))
        elif j == k + 1:
            seen.append(inp)

    remove = model.observe(shift)
    try:
        with torch.no_grad():
            model(x)
    finally:
        remove()
    if not seen or seen[0].shape != before.shape:
        return torch.tensor([float("inf"), 1.0])
    return torch.stack([(seen[0] - before).abs().max(), before.abs().max()]).double()


def bundle(models: Models, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """Several small tasks in one child, one after the other (one torch import for all): params["parts"] lists
    {name, task, params}; a part's own inputs come as "in-NAME/input" and its outputs go as "out-NAME/output", the
    models' tensors as they are. A part that fails reports its failure in meta["parts"][name] and the others still
    run; a resource limit ends them all."""
    from grader.graph.schema import GraphError

    meta: dict[str, Any] = {"parts": {}}
    out: Tensors = {}
    parts = params["parts"]
    for i, part in enumerate(parts):
        name, prefix = str(part["name"]), f"in-{part['name']}/"
        sub = {**params, **part["params"]}
        sub.pop("parts", None)
        own = {k.removeprefix(prefix): v for k, v in inputs.items() if k.startswith(prefix)}
        _SPAN[:] = [i / len(parts), (i + 1) / len(parts)]
        try:
            m, t = TASKS[part["task"]](Models(sub, inputs), sub, {**inputs, **own})
        except (MemoryError, RecursionError, OSError):
            raise  # a limit of the whole child: the parent reports it for every part
        except (ContractError, GraphError) as e:
            text = str(e) if isinstance(e, ContractError) else f"Your model {e}"
            meta["parts"][name] = {"ok": False, "kind": "contract", "message": text[:2000]}
            continue
        except Exception as e:
            import traceback

            traceback.print_exc()  # the grader's own error: its traceback goes to the job's log
            meta["parts"][name] = {"ok": False, "kind": "grader_error", "message": (
                f"The grader failed while running its {name} task on your rebuilt model ({type(e).__name__}: "
                f"{str(e)[:300]}). Your other checks are scored as usual; tell your instructor, who can regrade it."
            )}  # fmt: skip
            continue
        finally:
            _SPAN[:] = [0.0, 1.0]
        meta["parts"][name] = {"ok": True, "meta": m}
        out |= {f"out-{name}/{k}": v for k, v in t.items()}
    return meta, out


TASKS: dict[str, Callable[[Models, dict, Tensors], tuple[dict, Tensors]]] = {
    "bundle": bundle,
    "circle_runs": circle_runs,
    "deep_stats": deep_stats,
    "mnist_train": mnist_train,
    "init_sanity": init_sanity,
    "fold_batchnorm": fold_batchnorm,
    "tanh_stats": tanh_stats,
}
