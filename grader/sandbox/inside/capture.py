"""Capturing a model's forward pass as a graph (runs in the sandbox, beside the student's code).

The model runs on a random batch under a TorchFunctionMode that writes down every torch call it makes, with its
arguments as data: the model's input, earlier results, the model's parameters and buffers (by name), numbers,
and any other tensor as a named constant. The batch size is written as a symbol. The forward pass is captured
twice in each mode with two batch sizes, and the two captures must agree. Calls whose result never reaches the
output (statistics kept in forward, prints) are dropped, except whitelisted in-place writes to the model's buffers
(running statistics); an operation outside the whitelist that does reach the output is refused with a message
that says what to write instead.

Nothing here is trusted: the student's code shares this process. A graph is only ever data to the trusted side,
which validates it (grader.graph.schema) and rebuilds the model from whitelisted operations.
"""

from __future__ import annotations

import contextlib
import json
import math
import types
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from grader.graph import ops
from grader.sandbox.protocol import ContractError

#: Two batch sizes that no layer width of the lab is likely to equal.
BATCHES = (97, 131)
MAX_CONSTANT_VALUES = 100_000
_TENSOR_BASE = torch._C.TensorBase
_GETSET = type(torch.Tensor.T)
_SEVERAL = "it returns several tensors"
#: Calls that take numbers out of torch: a graph cannot hold what forward computes from them.
_ESCAPES = frozenset({"Tensor.numpy", "Tensor.item", "Tensor.tolist", "Tensor.__float__", "Tensor.__int__",
                      "Tensor.__array__", "Tensor.__index__"})  # fmt: skip


def op_name(func: Any) -> str | None:
    """The whitelist's spelling of a function the mode saw: F.x, torch.x or Tensor.x; None when unknown."""
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        return None
    owner = getattr(func, "__self__", None)
    if name == "__get__" and isinstance(owner, _GETSET):
        return f"Tensor.{owner.__name__}"
    if getattr(func, "__objclass__", None) in (_TENSOR_BASE, torch.Tensor) or getattr(torch.Tensor, name, None) is func:
        return f"Tensor.{name}"
    module = getattr(func, "__module__", None) or ""
    if module == "torch.nn.functional" or getattr(torch.nn.functional, name, None) is func:
        return f"F.{name}"
    if isinstance(owner, types.ModuleType) and owner.__name__ == "torch._C._nn":
        return f"F.{name}"
    if getattr(torch, name, None) is func:
        return f"torch.{name}"
    return f"{module}.{name}" if module else name


class _Opaque(Exception):
    """An argument the graph format cannot hold."""


class _Recorder(TorchFunctionMode):
    def __init__(self, x: torch.Tensor, state: dict[int, str], batch: int, constants: dict[str, torch.Tensor]):
        super().__init__()
        self.values: dict[int, int] = {id(x): 0}
        self.keep: list[Any] = [x]  # every tensor seen stays alive, so that no id() is reused while capturing
        self.nodes: list[dict] = []
        self.state, self.batch, self.constants = state, batch, constants
        self.scope: list[str] = []
        self.escapes: list[str] = []  # calls that took numbers computed from the input out of torch

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors = _tensors_in(out)
        if not tensors:
            name = op_name(func)
            if name in _ESCAPES and any(isinstance(a, torch.Tensor) and id(a) in self.values for a in args):
                self.escapes.append(name)
            return out
        name = op_name(func) or "an unknown function"
        node: dict[str, Any] = {"op": name, "scope": self.scope[-1] if self.scope else ""}
        if isinstance(out, torch.Tensor) and ops.allowed(name):
            try:
                node["args"] = [self._arg(a) for a in args]
                node["kwargs"] = {k: self._arg(v) for k, v in kwargs.items() if k not in ops.DROPPED_KWARGS}
            except _Opaque as e:
                node["opaque"] = str(e)
        else:
            node["opaque"] = "" if isinstance(out, torch.Tensor) else _SEVERAL
        self.nodes.append(node)
        for t in tensors:
            self.values[id(t)] = len(self.nodes)
        self.keep += [out, args, kwargs]
        return out

    def _arg(self, a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            if id(a) in self.values:
                return {"v": self.values[id(a)]}
            if id(a) in self.state:
                return {"p": self.state[id(a)]}
            return {"p": self._constant(a)}
        if isinstance(a, bool) or a is None:
            return a
        if isinstance(a, int):
            return {"b": 1} if a == self.batch else a
        if isinstance(a, float):
            return a if math.isfinite(a) else {"f": "nan" if math.isnan(a) else ("inf" if a > 0 else "-inf")}
        if isinstance(a, list | tuple):  # torch.Size included
            if len(a) > 64:
                raise _Opaque("a list of more than 64 items")
            return {"l": [self._arg(x) for x in a]}
        if isinstance(a, slice):
            return {"s": [self._arg(a.start), self._arg(a.stop), self._arg(a.step)]}
        if a is Ellipsis:
            return {"e": 0}
        if isinstance(a, torch.dtype):
            name = ops.dtype_name(a)
            if name is None:
                raise _Opaque(f"the dtype {a}")
            return {"d": name}
        if isinstance(a, str) and len(a) <= 32:
            return a
        if isinstance(a, torch.device):
            return None
        raise _Opaque(f"an argument of type {type(a).__name__[:60]}")

    def _constant(self, t: torch.Tensor) -> str:
        for name, kept in self.constants.items():
            if kept is t:
                return name
        used = sum(c.numel() for c in self.constants.values())
        if used + t.numel() > MAX_CONSTANT_VALUES:
            raise ContractError(
                f"its forward uses tensors of {used + t.numel()} values that are neither parameters nor buffers "
                f"of the model (at most {MAX_CONSTANT_VALUES}). Make weights nn.Parameter and fixed tensors "
                "buffers (self.register_buffer), or compute them inside forward."
            )
        name = f"_constant{len(self.constants)}"
        self.constants[name] = t
        return name


def _tensors_in(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, tuple | list):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []


def _state_of(model: nn.Module) -> tuple[list[dict], dict[str, torch.Tensor], dict[int, str]]:
    entries, tensors, ids = [], {}, {}
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in items:
            if t is None or id(t) in ids:
                continue
            entries.append({"name": name, "kind": kind})
            tensors[name] = t
            ids[id(t)] = name
    return entries, tensors, ids


def _scope_hooks(model: nn.Module, recorder_ref: list[_Recorder | None]) -> list[Any]:
    names = {id(m): n for n, m in model.named_modules()}

    def pre(module: nn.Module, _args: Any) -> None:
        rec = recorder_ref[0]
        if rec is not None:
            label = names.get(id(module))
            shown = f"{label} ({type(module).__name__[:40]})" if label else type(module).__name__[:40]
            rec.scope.append(shown[:110])

    def post(_module: nn.Module, _args: Any, _out: Any) -> None:
        rec = recorder_ref[0]
        if rec is not None and rec.scope:
            rec.scope.pop()

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    return [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]


def _trace(
    model: nn.Module,
    x: torch.Tensor,
    ids: dict[int, str],
    constants: dict[str, torch.Tensor],
    what: str,
    escapes: list[str],
) -> dict:
    ref: list[_Recorder | None] = [None]
    hooks = _scope_hooks(model, ref)
    recorder = _Recorder(x, ids, x.shape[0], constants)
    ref[0] = recorder
    try:
        with recorder:
            out = model(x)
    finally:
        ref[0] = None
        for h in hooks:
            h.remove()
        escapes += recorder.escapes
    if not isinstance(out, torch.Tensor):
        raise ContractError(f"{what} must return a tensor, but its forward returned {type(out).__name__[:60]}.")
    if id(out) in recorder.values:
        output = recorder.values[id(out)]
    else:  # a tensor no recorded call made: a parameter or a constant returned as it is
        recorder.nodes.append({"op": "Tensor.clone", "args": [recorder._arg(out)], "kwargs": {}, "scope": ""})
        output = len(recorder.nodes)
    buffers = {ids[id(t)] for _, t in model.named_buffers() if id(t) in ids}
    return _prune({"nodes": recorder.nodes, "output": output}, what, buffers)


def _prune(program: dict, what: str, buffers: set[str] | None = None) -> dict:
    """Only the calls the output depends on, and those that write a buffer in place with what they depend on
    (running statistics kept in forward), renumbered; a refused call the output depends on raises ContractError,
    and the writes to a buffer are dropped, all of them, when one of them needs a refused call."""
    nodes, output = program["nodes"], program["output"]
    needed = _needed(nodes, output, what)
    calls = [(n["op"], None if "opaque" in n or not n["args"] else n["args"][0]) for n in nodes]
    writes = ops.buffer_writes(calls, buffers or set())
    for buffer in dict.fromkeys(writes.values()):
        with contextlib.suppress(ContractError):  # the grader cannot rebuild them: dropped, as the output needs none
            needed |= set().union(*(_needed(nodes, v, what) for v, name in writes.items() if name == buffer))
    order = sorted(needed)
    renumber = {0: 0} | {v: i + 1 for i, v in enumerate(order)}
    kept = [_renumbered(nodes[v - 1], renumber) for v in order]
    return {"nodes": kept, "output": renumber[output]}


def _needed(nodes: list[dict], output: int, what: str) -> set[int]:
    """The calls ``output`` depends on (itself included); a refused one among them raises ContractError."""
    needed, stack = set(), [output]
    while stack:
        v = stack.pop()
        if v == 0 or v in needed:
            continue
        needed.add(v)
        node = nodes[v - 1]
        if "opaque" in node:
            reason = f" ({node['opaque']})" if node["opaque"] else ""
            if ops.allowed(node["op"]) and node["opaque"] == _SEVERAL:
                raise ContractError(f"{what}: its forward calls {node['op']} in a form that returns several tensors "
                                    "(values and indices), which the grader cannot rebuild outside the sandbox: use "
                                    "torch.amax or torch.amin for the largest or smallest values.")  # fmt: skip
            if ops.allowed(node["op"]) and node["opaque"]:
                raise ContractError(f"{what}: its forward calls {node['op']} with {node['opaque']}, which the "
                                    "grader cannot rebuild outside the sandbox.")  # fmt: skip
            raise ContractError(f"{what}: {ops.refusal(node['op']).rstrip('.')}{reason}.")
        stack += _refs([*node["args"], *node["kwargs"].values()])
    return needed


def _why_different(what: str, mode: str, escapes: list[str]) -> str:
    """Why two captures of one forward pass differ: numbers taken out of torch, or a forward that depends on the
    batch size."""
    batches = f"a batch of {BATCHES[0]} and one of {BATCHES[1]} inputs"
    if escapes:
        shown = ", ".join(dict.fromkeys(escapes[:50]))
        return (
            f"{what}: its forward takes numbers out of torch ({shown}) and computes its output from them, which a "
            "graph cannot hold: keep the computation in torch (numpy arrays, .item() and .tolist() are not part of "
            f"a model's graph). If it does not, write forward for any batch size: {batches} ran different "
            f"operations in {mode} mode."
        )
    return (
        f"{what}: its forward runs different operations for {batches} in {mode} mode. Write forward for any batch "
        "size (e.g. x.view(x.size(0), -1), not a fixed number)."
    )


def _state_refs(node: dict) -> list[str]:
    found = []

    def walk(a: Any) -> None:
        if isinstance(a, dict):
            if "p" in a:
                found.append(a["p"])
            for item in a.get("l") or a.get("s") or []:
                walk(item)

    for a in [*node["args"], *node["kwargs"].values()]:
        walk(a)
    return found


def _refs(args: list) -> list[int]:
    found = []
    for a in args:
        if isinstance(a, dict):
            if "v" in a:
                found.append(a["v"])
            elif "l" in a or "s" in a:
                found += _refs(a.get("l") or a.get("s") or [])
    return found


def _renumbered(node: dict, renumber: dict[int, int]) -> dict:
    def walk(a: Any) -> Any:
        if isinstance(a, dict):
            if "v" in a:
                return {"v": renumber[a["v"]]}
            if "l" in a:
                return {"l": [walk(x) for x in a["l"]]}
            if "s" in a:
                return {"s": [walk(x) for x in a["s"]]}
        return a

    return {"op": node["op"], "args": [walk(a) for a in node["args"]],
            "kwargs": {k: walk(v) for k, v in node["kwargs"].items()}, "scope": node["scope"]}  # fmt: skip


def capture(
    model: nn.Module, input_size: int, what: str, need_parameters: bool = True
) -> tuple[dict, dict[str, torch.Tensor]]:
    """The model's graph (JSON data, see grader.graph.schema) and its state and constants by name.

    ``what`` names the call that built the model in messages, e.g. "mnist_model(True)". The model's state is
    copied before it runs, so that a forward pass that changes it (batch norm in train mode) changes nothing
    the trusted side receives."""
    entries, tensors, ids = _state_of(model)
    if need_parameters and not any(e["kind"] == "parameter" for e in entries):
        raise ContractError(f"{what} returned a module without parameters.")
    snapshot = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    constants: dict[str, torch.Tensor] = {}
    programs = {}
    was_training = model.training
    try:
        for mode in ("train", "eval"):
            model.train(mode == "train")
            captured, escapes = [], []
            for batch in BATCHES:
                x = torch.randn(batch, input_size)
                captured.append(_trace(model, x, ids, constants, what, escapes))
            if json.dumps(captured[0], sort_keys=True) != json.dumps(captured[1], sort_keys=True):
                raise ContractError(_why_different(what, mode, escapes))
            programs[mode] = captured[0]
        repeats = False
        if any(node["op"] in ops.RANDOM for node in programs["train"]["nodes"]):
            model.train(True)
            x = torch.randn(BATCHES[0], input_size)
            with torch.no_grad():
                first, second = model(x), model(x)
            repeats = (
                isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and torch.equal(first, second)
            )
    finally:
        model.train(was_training)
    used = {ref for program in programs.values() for node in program["nodes"] for ref in _state_refs(node)}
    constants = {name: t for name, t in constants.items() if name in used}  # not those of dropped calls
    entries += [{"name": name, "kind": "constant"} for name in constants]
    out = {**snapshot, **{name: t.detach().to("cpu", copy=True).contiguous() for name, t in constants.items()}}
    return {"version": 1, "state": entries, **programs, "repeats_random": repeats}, out
