"""The one task that runs the student's code: build every model the grading needs and capture it as data.

For each requested build (factory, arguments, seed) the task seeds torch, calls the student's factory and
captures the model's graph in train and eval mode with its tensors (grader.sandbox.inside.capture). It also
calls ``fold_batchnorm`` on the grader's BatchNorm network and captures what it returns, and reports which
contract names the file defines and its ``SIGMAS``. It trains nothing and measures nothing: whatever this
process computes could be forged by the code it imported. A build that fails is reported with the failure the
student reads, and the other builds go on.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import numbers
import signal
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from grader.sandbox.inside.capture import capture
from grader.sandbox.protocol import CONTRACT_NAMES, ContractError, SandboxFailure

SIGMA_LABELS = ("small", "good", "big")


def kind(value: object) -> str:
    if inspect.isfunction(value):
        return "function"
    if isinstance(value, dict):
        return "dict"
    return f"other:{type(value).__name__[:60]}"


def sigmas(value: object) -> tuple[dict[str, float] | None, str | None]:
    """SIGMAS as floats (any real number, numpy scalars included), and a note about what was left out."""
    if not isinstance(value, dict):
        return None, None
    found, ignored = {}, []
    for key, sigma in value.items():
        if key not in SIGMA_LABELS:
            ignored.append(str(key)[:40])
            continue
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
            continue
        number = float(sigma)
        if math.isfinite(number):
            found[key] = number
    note = f"ignored key(s) {', '.join(repr(k) for k in ignored[:5])}" if ignored else None
    return found, note


class FactoryTimeout(Exception):
    """One factory (with its models' forward passes) used up its share of the build's CPU time."""


@contextlib.contextmanager
def cpu_budget(seconds: float | None):
    """Raise FactoryTimeout in this thread after `seconds` of its process's CPU time (SIGVTALRM). The student's
    code could switch it off; that only lets it run into the whole job's limit, which fails every check."""
    if not seconds:
        yield
        return

    def expired(_signum: int, _frame: object) -> None:
        raise FactoryTimeout

    previous = signal.signal(signal.SIGVTALRM, expired)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def _shown(factory: str, args: list) -> str:
    return f"{factory}({', '.join(repr(a) for a in args)})"


def _cpu() -> float:
    import time

    return time.process_time()


def _model(module: types.ModuleType, factory: str, args: list, seed: int) -> nn.Module:
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise ContractError(f"Your file must define a function {factory}(); it is missing or not callable.")
    torch.manual_seed(seed)
    model = fn(*args)
    if not isinstance(model, nn.Module):
        raise ContractError(
            f"{_shown(factory, args)} must return a torch.nn.Module, but returned {type(model).__name__[:60]}."
        )
    return model


def build(
    module: types.ModuleType,
    params: dict,
    inputs: dict[str, torch.Tensor],
    describe: Callable[[BaseException], SandboxFailure],
) -> tuple[dict, dict[str, torch.Tensor]]:
    namespace = vars(module)
    names = {name: kind(namespace[name]) if name in namespace else "missing" for name in CONTRACT_NAMES}
    found, note = sigmas(namespace.get("SIGMAS"))
    graphs: list[dict] = []
    index: dict[str, int] = {}
    models: dict[str, int] = {}
    failures: dict[str, dict] = {}
    tensors: dict[str, torch.Tensor] = {}

    def keep(key: str, graph: dict, state: dict[str, torch.Tensor]) -> None:
        text = json.dumps({k: v for k, v in graph.items() if k != "state"}, sort_keys=True) + json.dumps(graph["state"])
        if text not in index:
            index[text] = len(graphs)
            graphs.append(graph)
        models[key] = index[text]
        for name, t in state.items():
            tensors[f"{key}/{name}"] = t

    per_factory = params.get("factory_cpu_seconds")
    spent: dict[str, float] = {}  # CPU seconds each factory has used so far
    timed_out: dict[str, dict] = {}
    for spec in params.get("models", []):
        key, factory, seed = spec["key"], spec["factory"], int(spec["seed"])
        if factory in timed_out:
            failures[key] = timed_out[factory]
            continue
        args = list(spec.get("args", []))
        label = spec.get("sigma_label")
        if label is not None:
            if found is None or label not in found:
                continue  # the trusted side reports a missing SIGMAS entry itself
            args = [found[label]]
        try:
            if names.get(factory) != "function":
                raise ContractError(f"Your file must define a function {factory}(); it is missing or not callable.")
            left = None if per_factory is None else max(0.05, float(per_factory) - spent.get(factory, 0.0))
            t0 = _cpu()
            try:
                with cpu_budget(left):
                    model = _model(module, factory, args, seed)
                    graph, state = capture(model, int(spec["input"]), _shown(factory, args))
            finally:
                spent[factory] = spent.get(factory, 0.0) + _cpu() - t0
            keep(key, graph, state)
        except FactoryTimeout as error:
            failure = describe(error).model_copy(update={
                "kind": "cpu_time",
                "message": f"{factory}() and the forward passes of its models used more than {per_factory:g} s of "
                "CPU time (its share of the build). Look for an infinite loop or a very slow computation in "
                f"{factory}() or in forward().",
            })  # fmt: skip
            timed_out[factory] = failures[key] = failure.model_dump(mode="json")
        except BaseException as error:  # whatever the student's code raises is that build's failure
            failures[key] = describe(error).model_dump(mode="json")
    fold = params.get("fold")
    if fold is not None:
        try:
            folded = _fold(module, names, fold, inputs)
            graph, state = capture(folded, int(fold["input"]), "fold_batchnorm(model)", need_parameters=False)
            keep("fold", graph, state)
        except BaseException as error:
            failures["fold"] = describe(error).model_dump(mode="json")
    meta: dict[str, Any] = {
        "names": names, "sigmas": found, "sigmas_note": note, "graphs": graphs, "models": models,
        "failures": failures,
    }  # fmt: skip
    return meta, tensors


def _fold(module: types.ModuleType, names: dict, fold: dict, inputs: dict[str, torch.Tensor]) -> nn.Module:
    from grader.batchnorm_teacher import build as build_teacher

    if names.get("fold_batchnorm") != "function":
        raise ContractError("Your file must define a function fold_batchnorm(model).")
    teacher = build_teacher(fold["spec"])
    teacher.load_state_dict({k.removeprefix("teacher/"): v for k, v in inputs.items() if k.startswith("teacher/")})
    teacher.eval()
    with torch.no_grad():
        folded = module.fold_batchnorm(teacher)
    if not isinstance(folded, nn.Module):
        raise ContractError(
            f"fold_batchnorm(model) must return a torch.nn.Module, but returned {type(folded).__name__[:60]}."
        )
    folded.eval()
    return folded
