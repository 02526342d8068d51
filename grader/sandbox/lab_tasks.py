"""Lab tasks that run INSIDE the sandbox child, beside the student's code.

Nothing here is trusted: the student's module shares this process and can change anything in it. Tasks only
build the student's models, train them with the lab's recipe and return raw data (logits, activations, weights).
Labels of validation data never reach this side, and the grading process computes every score from the raw
data after validating it. Each task is fn(module, params, inputs) -> (meta, tensors).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grader.batchnorm_teacher import build as build_batchnorm_mlp
from grader.sandbox.protocol import PROGRESS_FD, ContractError

Tensors = dict[str, torch.Tensor]


def report_progress(done: int, total: int) -> None:
    """Tell the grading side how far the task is (a fixed-width line over the last one, in the progress file the
    parent opened). Display only: a student who breaks this only loses their progress bar."""
    with suppress(OSError):
        os.pwrite(PROGRESS_FD, f"{done} {total}".ljust(31).encode() + b"\n", 0)


def build(module: ModuleType, name: str, *args: Any) -> nn.Module:
    """Call the student's factory and check that it returned a module with parameters."""
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ContractError(f"Your file must define a function {name}(); it is missing or not callable.")
    model = factory(*args)
    shown = ", ".join(repr(a) for a in args)
    if not isinstance(model, nn.Module):
        raise ContractError(f"{name}({shown}) must return a torch.nn.Module, but returned {type(model).__name__}.")
    if not any(True for _ in model.parameters()):
        raise ContractError(f"{name}({shown}) returned a module without parameters.")
    return model


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


class LinearTrace:
    """Records, in execution order, the input and output of every nn.Linear call (and the gradient that
    reaches each output when `grads` is set)."""

    def __init__(self, model: nn.Module, grads: bool = False) -> None:
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self.layers: list[nn.Linear] = []
        self.output_grads: dict[int, torch.Tensor] = {}
        self._grads = grads
        self._handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.Linear)]

    def _hook(self, layer: nn.Module, args: tuple, output: torch.Tensor) -> None:
        index = len(self.outputs)
        self.layers.append(layer)  # type: ignore[arg-type]
        self.inputs.append(args[0].detach())
        self.outputs.append(output.detach())
        if self._grads and output.requires_grad:
            output.register_hook(lambda g, i=index: self.output_grads.__setitem__(i, g.detach()))

    def clear(self) -> None:
        self.inputs, self.outputs, self.layers, self.output_grads = [], [], [], {}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@contextmanager
def traced(model: nn.Module, grads: bool = False) -> Iterator[LinearTrace]:
    trace = LinearTrace(model, grads)
    try:
        yield trace
    finally:
        trace.remove()


def _reinit_glorot(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def circle_runs(module: ModuleType, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """Part 1: full-batch SGD on the circle task for each run spec {sigma, glorot, seed, raw, grid}; returns
    the training-set logits at `log_steps`, validation logits at `val_steps` and decision-grid logits at the end.
    All runs train as one batched computation (torch.func.vmap over stacked parameters) when the student's
    models allow it; otherwise, one model at a time, and the meta says why."""
    reason = "batching is switched off for this task" if not params.get("batched", True) else None
    if reason is None:
        models = [_circle_model(module, run) for run in params["runs"]]
        reason = _why_not_batched(models)
    if reason is None:
        try:
            return {"batched": True}, _circle_runs_batched(models, params, inputs)
        except ContractError:
            raise
        except Exception as e:  # an operation vmap cannot batch: the loop below still grades the model
            reason = f"batched training failed ({type(e).__name__}: {str(e)[:200]})"
    return {"batched": False, "reason": reason}, _circle_runs_loop(module, params, inputs)


def _circle_model(module: ModuleType, run: dict) -> nn.Module:
    torch.manual_seed(run["seed"])
    model = build(module, "circle_model", run["sigma"])
    if run["glorot"]:
        _reinit_glorot(model)
    return model


def _why_not_batched(models: list[nn.Module]) -> str | None:
    """None when every model has the same parameters (names, shapes, dtypes) and nothing whose behaviour
    depends on the batch or on randomness (buffers, dropout, batch norm)."""
    first = models[0]
    signature = [(n, p.shape, p.dtype) for n, p in first.named_parameters()]
    for m in models:
        if type(m) is not type(first) or [(n, p.shape, p.dtype) for n, p in m.named_parameters()] != signature:
            return "circle_model returns models of different structure for different sigmas"
        if any(True for _ in m.buffers()):
            return "the model has buffers (batch norm or running statistics)"
        if any(isinstance(x, nn.modules.dropout._DropoutNd) for x in m.modules()):
            return "the model uses dropout"
    return None


def _circle_runs_batched(models: list[nn.Module], params: dict, inputs: Tensors) -> Tensors:
    """Every run at once: the parameters of all models stacked on a leading axis, one vmapped forward and
    gradient per step, and the same SGD update (p - lr * grad) that torch.optim.SGD makes."""
    from torch.func import functional_call, stack_module_state, vmap

    runs, steps, lr = params["runs"], int(params["steps"]), float(params["lr"])
    log_steps, val_steps = set(params["log_steps"]), set(params["val_steps"])
    stacked, _ = stack_module_state(models)
    names = list(stacked)
    weights = [stacked[k].detach().requires_grad_(True) for k in names]  # (R, ...) each
    base = models[0]
    x = torch.stack([inputs["x_train_raw" if r["raw"] else "x_train"] for r in runs])  # (R, N, 2)
    x_val = torch.stack([inputs["x_val_raw" if r["raw"] else "x_val"] for r in runs])  # (R, M, 2)
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
                w.add_(g, alpha=-lr)  # exactly what torch.optim.SGD does
    weights_of = [dict(zip(names, (w[i].detach() for w in weights), strict=True)) for i in range(len(runs))]
    out: Tensors = {}
    train, val = torch.stack(train_logits, dim=1), torch.stack(val_logits, dim=1)  # (R, T, N, 2)
    for i, run in enumerate(runs):
        out[f"run{i}.train"], out[f"run{i}.val"] = train[i], val[i]
        if run["grid"]:
            grid = inputs["grid_raw" if run["raw"] else "grid"]
            with torch.no_grad():
                out[f"run{i}.grid"] = functional_call(base, weights_of[i], (grid,))
    return out


def _circle_runs_loop(module: ModuleType, params: dict, inputs: Tensors) -> Tensors:
    """The lab's own way: one model after the other, torch.optim.SGD."""
    steps, lr = int(params["steps"]), float(params["lr"])
    log_steps, val_steps = set(params["log_steps"]), set(params["val_steps"])
    out: Tensors = {}
    for i, run in enumerate(params["runs"]):
        report_progress(i, len(params["runs"]))
        suffix = "_raw" if run["raw"] else ""
        x, y, x_val = inputs["x_train" + suffix], inputs["y_train"], inputs["x_val" + suffix]
        model = _circle_model(module, run)
        what = f"circle_model({run['sigma']!r})"
        opt = torch.optim.SGD(model.parameters(), lr=lr)
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
                out[f"run{i}.grid"] = logits_of(model, inputs["grid" + suffix], 2, what)
    return out


def deep_stats(module: ModuleType, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """Part 2: for each init, one forward pass of the untrained deep net on a large sample and one backward
    pass of the parent's random cotangent; returns every Linear layer's output, its gradient, and its weights."""
    x, cotangent = inputs["x"], inputs["cotangent"]
    out: Tensors = {}
    meta: dict[str, Any] = {}
    for i, init in enumerate(params["inits"]):
        report_progress(i, len(params["inits"]))
        torch.manual_seed(int(params["seed"]))
        model = build(module, "deep_model", init)
        model.train()
        with traced(model, grads=True) as trace:
            logits = logits_of(model, x, 2, f"deep_model({init!r})")
            logits.backward(cotangent)
        if not trace.layers:
            raise ContractError(f"deep_model({init!r}) must be built from nn.Linear layers; none was called.")
        for k, layer in enumerate(trace.layers):
            out[f"{init}.z{k}"] = trace.outputs[k]
            if k in trace.output_grads:
                out[f"{init}.dz{k}"] = trace.output_grads[k]
            out[f"{init}.w{k}"] = layer.weight.detach()
            if layer.bias is not None:
                out[f"{init}.b{k}"] = layer.bias.detach()
        meta[init] = {"layers": len(trace.layers)}
    return meta, out


def _diagnostics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, prefix: str, out: Tensors) -> None:
    """Raw data for the makemore diagnostics: each hidden activation (the input of Linear k >= 1), the gradient
    of the loss reaching it, and each weight's gradient."""
    model.zero_grad()
    with traced(model) as trace:
        acts: list[torch.Tensor] = []

        def keep(_layer: nn.Module, args: tuple) -> None:
            if args[0].requires_grad:
                args[0].retain_grad()
            acts.append(args[0])

        handles = [m.register_forward_pre_hook(keep) for m in model.modules() if isinstance(m, nn.Linear)]
        try:
            F.cross_entropy(model(x), y).backward()
        finally:
            for h in handles:
                h.remove()
    for k, a in enumerate(acts[1:], start=1):
        out[f"{prefix}.act{k}"] = a.detach()
        if a.grad is not None:
            out[f"{prefix}.actgrad{k}"] = a.grad.detach()
    for k, layer in enumerate(trace.layers):
        if layer.weight.grad is not None:
            out[f"{prefix}.wgrad{k}"] = layer.weight.grad.detach().clone()
            out[f"{prefix}.w{k}"] = layer.weight.detach().clone()
    model.zero_grad()


def _dropout_probe(model: nn.Module, x: torch.Tensor, seed: int, out: Tensors) -> None:
    """Two eval-mode and two train-mode passes of the same batch, with every Linear's input and output, so that
    the parent measures where dropout acts, at which rate and with which scaling."""
    for name, train in (("eval0", False), ("eval1", False), ("train0", True), ("train1", True)):
        model.train(train)
        torch.manual_seed(seed + len(out))
        with torch.no_grad(), traced(model) as trace:
            out[f"probe.{name}.logits"] = logits_of(model, x, 10, "mnist_model")
        for k in range(len(trace.layers)):
            out[f"probe.{name}.in{k}"] = trace.inputs[k]
            out[f"probe.{name}.out{k}"] = trace.outputs[k]


def _eval_logits(model: nn.Module, x: torch.Tensor, batch: int = 2500) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([logits_of(model, x[i : i + batch], 10, "mnist_model") for i in range(0, len(x), batch)])


def _adamw(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW with torch's fused kernel (one pass over each tensor; on this CPU a step takes a quarter of the
    default's time, the same update up to float rounding); the default one where the parameters do not allow it."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=lr)


def mnist_train(module: ModuleType, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
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
    torch.manual_seed(seed)
    model = build(module, "mnist_model", bool(params["dropout"]))
    out: Tensors = {}
    _dropout_probe(model, inputs["x_probe"], seed, out)
    model.to(device)  # built and probed on the CPU, trained where the grader runs (the same weights either way)
    model.train()
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
    model.train()
    _diagnostics(model, x_diag, y_diag, "diag.final", out)
    out["train_logits"] = torch.stack(train_logits)
    out["val_logits"] = torch.stack(val_logits)
    out["final_train_logits"], out["final_val_logits"] = final_train, final_val
    out["update_ratio"] = torch.tensor(ratios, dtype=torch.float32).reshape(len(ratios), len(weights))
    report_progress(epochs, epochs + 1)
    mc = []
    model.train()
    t1 = time.perf_counter()
    x_mc = inputs["x_mc"].to(device)
    with torch.no_grad():
        for _ in range(int(params["mc_passes"])):
            mc.append(logits_of(model, x_mc, 10, "mnist_model"))
    seconds["mc"] = time.perf_counter() - t1
    out["mc_logits"] = torch.stack(mc)
    return {"seconds": seconds}, out


def init_sanity(module: ModuleType, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """makemore E01: each model's parameters at init and the sum of |gradient| over a few SGD steps on training
    data (the parent finds the parameters that never get any gradient and the hidden units that are copies)."""
    out: Tensors = {}
    meta: dict[str, Any] = {}
    for i, spec in enumerate(params["models"]):
        report_progress(i, len(params["models"]))
        torch.manual_seed(int(params["seed"]))
        model = build(module, spec["factory"], *spec["args"])
        x, y = inputs[f"{spec['data']}_x"], inputs[f"{spec['data']}_y"]
        names = [n for n, _ in model.named_parameters()]
        meta[f"m{i}"] = {"names": names}
        for n, p in model.named_parameters():
            out[f"m{i}.init.{n}"] = p.detach().clone()
        opt = torch.optim.SGD(model.parameters(), lr=float(params["lr"]))
        grad_sum = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        model.train()
        for _ in range(int(params["steps"])):
            opt.zero_grad()
            what = f"{spec['factory']}{tuple(spec['args'])}"
            F.cross_entropy(logits_of(model, x, spec["n_classes"], what), y).backward()
            for n, p in model.named_parameters():
                if p.grad is not None:
                    grad_sum[n] += p.grad.detach().abs()
            opt.step()
        for n, g in grad_sum.items():
            out[f"m{i}.grad.{n}"] = g
    return meta, out


def fold_batchnorm(module: ModuleType, params: dict, inputs: Tensors) -> tuple[dict, Tensors]:
    """makemore E02: rebuild the grader's trained Linear/BatchNorm1d/Tanh MLP, call the student's fold, and return
    the folded model's outputs and the layers it actually executed (type and parameters, in order)."""
    state = {k.removeprefix("state."): v for k, v in inputs.items() if k.startswith("state.")}
    model = build_batchnorm_mlp(params["spec"])
    model.load_state_dict(state)
    model.eval()
    fold: Callable[[nn.Module], Any] | None = getattr(module, "fold_batchnorm", None)
    if not callable(fold):
        raise ContractError("Your file must define a function fold_batchnorm(model).")
    with torch.no_grad():
        folded = fold(model)
    if not isinstance(folded, nn.Module):
        raise ContractError(
            f"fold_batchnorm(model) must return a torch.nn.Module, but returned {type(folded).__name__}."
        )
    folded.eval()
    executed: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda mod, _a, _o: executed.append(mod))
        for m in folded.modules()
        if not any(True for _ in m.children())
    ]
    with torch.no_grad():
        y = folded(inputs["x"])
    for h in handles:
        h.remove()
    if not isinstance(y, torch.Tensor):
        raise ContractError(f"The folded model must return a tensor, but returned {type(y).__name__}.")
    out: Tensors = {"y": y}
    layers = []
    for k, m in enumerate(executed):
        # a class name is the student's text: cut here so that no name fills the reply (the parent cleans it again)
        layers.append({"type": type(m).__name__[:200], "torch": type(m).__module__.startswith("torch.nn")})
        if isinstance(m, nn.Linear):
            out[f"layer{k}.weight"] = m.weight.detach()
            if m.bias is not None:
                out[f"layer{k}.bias"] = m.bias.detach()
    return {"layers": layers}, out


# Where each task runs student code, for messages about time limits.
STUDENT_CODE = {
    "circle_runs": "circle_model() and its forward()",
    "deep_stats": "deep_model() and its forward()",
    "mnist_train": "mnist_model() and its forward()",
    "init_sanity": "circle_model(), deep_model() or mnist_model()",
    "fold_batchnorm": "fold_batchnorm() or the forward() of the model it returns",
}

TASKS: dict[str, Callable[[ModuleType, dict, Tensors], tuple[dict, Tensors]]] = {
    "circle_runs": circle_runs,
    "deep_stats": deep_stats,
    "mnist_train": mnist_train,
    "init_sanity": init_sanity,
    "fold_batchnorm": fold_batchnorm,
}
