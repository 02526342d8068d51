"""Capturing a model's forward pass as a graph (runs in the sandbox, beside the student's code).

The model runs on a random batch under a TorchFunctionMode that writes down every torch call it makes, with its
arguments as data: the model's input, earlier results, the model's parameters and buffers (by name), numbers,
and any other tensor as a named constant. The batch size is written as a symbol. The forward pass is captured
twice in each mode with two batch sizes, and the two captures must agree. Calls whose result never reaches the
output (statistics kept in forward, prints) are dropped, except the writes to the model's buffers (running
statistics): whitelisted in-place calls, and a buffer that forward reassigns (``self.running_mean = ...``), which
the program's ``assign`` records. A buffer that forward changes in a way the graph cannot hold, and that the model
reads, is refused, as is an operation outside the whitelist that reaches the output, with a message that says what
to write instead.

Nothing here is trusted: the student's code shares this process. A graph is only ever data to the trusted side,
which validates it (grader.graph.schema) and rebuilds the model from whitelisted operations.
"""

from __future__ import annotations

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
#: In-place operators (``x += y``), which write their first argument.
_IN_PLACE_OPERATORS = frozenset(f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "div", "floordiv", "mod", "pow",
                                                        "matmul", "and", "or", "xor", "lshift", "rshift"))  # fmt: skip
_BATCH_NORM_MOMENTUM = 6  # F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


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
    def __init__(
        self,
        x: torch.Tensor,
        state: dict[int, str],
        buffers: set[str],
        batch: int,
        constants: dict[str, torch.Tensor],
    ):
        super().__init__()
        self.values: dict[int, int] = {id(x): 0}
        self.keep: list[Any] = [x]  # every tensor seen stays alive, so that no id() is reused while capturing
        self.nodes: list[dict] = []
        self.state, self.buffers, self.batch, self.constants = state, buffers, batch, constants
        self.scope: list[str] = []
        self.modules: list[nn.Module] = []  # the student's modules whose forward is running, innermost last
        self.escapes: list[str] = []  # calls that took numbers computed from the input out of torch
        self.touched: dict[str, str] = {}  # buffer -> the first write to it that the graph cannot hold
        self.replaced: set[str] = set()  # buffers given a computed value with buffer.data = value

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self._note_write(func, args)
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
            if name == "F.batch_norm" and "args" in node:
                self._cumulative_momentum(node, args, kwargs)
        else:
            node["opaque"] = "" if isinstance(out, torch.Tensor) else _SEVERAL
        self.nodes.append(node)
        for t in tensors:
            self.values[id(t)] = len(self.nodes)
        self.keep += [out, args, kwargs]
        return out

    def _note_write(self, func: Any, args: tuple) -> None:
        """Remember a write to a buffer of the model that no whitelisted in-place call makes (``fill_``,
        ``buffer[:] = ...``, ``buffer.data = ...``): the grader cannot follow it."""
        if not args or not isinstance(args[0], torch.Tensor):
            return
        target = self.state.get(id(args[0]))
        if target is None or target not in self.buffers:
            return
        name = op_name(func) or ""
        base = name.rpartition(".")[2]
        if getattr(func, "__name__", None) == "__set__":
            if len(args) > 1 and isinstance(args[1], torch.Tensor) and id(args[1]) in self.values:
                self.values[id(args[0])] = self.values[id(args[1])]  # from now on the buffer holds that value
                self.replaced.add(target)
                return
            label = "an assignment to its .data"
        elif name == "Tensor.__setitem__":
            label = "an index assignment"
        elif _writes_in_place(base) and not ops.allowed(name):
            label = name
        else:
            return
        self.touched.setdefault(target, label)

    def _cumulative_momentum(self, node: dict, args: tuple, kwargs: dict) -> None:
        """nn.BatchNorm1d(momentum=None) averages over all batches: it passes F.batch_norm the momentum
        1.0 / float(num_batches_tracked), a number computed out of torch. The graph computes it from the buffer
        instead (in float64, as Python does), so that every pass records the same program."""
        module = self.modules[-1] if self.modules else None
        if not isinstance(module, nn.modules.batchnorm._BatchNorm) or module.momentum is not None:
            return
        count = module.num_batches_tracked
        momentum = args[_BATCH_NORM_MOMENTUM] if len(args) > _BATCH_NORM_MOMENTUM else kwargs.get("momentum")
        if not (module.training and isinstance(count, torch.Tensor) and count.numel() == 1 and float(count) > 0):
            return
        if not isinstance(momentum, float) or momentum != 1.0 / float(count):
            return
        try:
            ref = self._arg(count)
        except _Opaque:
            return
        if self.escapes and self.escapes[-1] == "Tensor.__float__":  # its float(num_batches_tracked), now in torch
            self.escapes.pop()
        scope = node["scope"]
        self.nodes.append({"op": "Tensor.double", "args": [ref], "kwargs": {}, "scope": scope})
        self.nodes.append({"op": "Tensor.reciprocal", "args": [{"v": len(self.nodes)}], "kwargs": {}, "scope": scope})
        if len(args) > _BATCH_NORM_MOMENTUM:
            node["args"][_BATCH_NORM_MOMENTUM] = {"v": len(self.nodes)}
        else:
            node["kwargs"]["momentum"] = {"v": len(self.nodes)}

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


def _writes_in_place(base: str) -> bool:
    """Whether a method or operator of this name writes its first argument (``fill_``, ``__ior__``)."""
    return (base.endswith("_") and not base.endswith("__")) or base in _IN_PLACE_OPERATORS


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
            rec.modules.append(module)

    def post(_module: nn.Module, _args: Any, _out: Any) -> None:
        rec = recorder_ref[0]
        if rec is not None and rec.scope:
            rec.scope.pop()
            rec.modules.pop()

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    return [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]


def _current(model: nn.Module, entries: list[dict]) -> dict[str, torch.Tensor | None]:
    """The tensor each state entry's name holds now (forward may have put another in a buffer's place)."""
    found: dict[str, torch.Tensor | None] = {}
    for entry in entries:
        *path, leaf = entry["name"].split(".")
        module: nn.Module | None = model
        for part in path:
            module = module._modules.get(part) if module is not None else None
        table = (module._parameters if entry["kind"] == "parameter" else module._buffers) if module is not None else {}
        found[entry["name"]] = table.get(leaf)
    return found


def _same(a: torch.Tensor, b: torch.Tensor | None) -> bool:
    if b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    b = b.detach().to("cpu")
    return bool(((a == b) | (a.isnan() & b.isnan())).all()) if a.is_floating_point() else torch.equal(a, b)


def _trace(
    model: nn.Module,
    x: torch.Tensor,
    entries: list[dict],
    constants: dict[str, torch.Tensor],
    what: str,
    escapes: list[str],
) -> tuple[dict, dict[str, str]]:
    """One forward pass's program, and the buffers it changed in a way the program cannot hold (with why)."""
    before = _current(model, entries)
    ids: dict[int, str] = {}
    for name, t in before.items():
        if t is not None:
            ids.setdefault(id(t), name)
    values = {name: t.detach().to("cpu", copy=True) for name, t in before.items() if t is not None}
    buffers = {e["name"] for e in entries if e["kind"] == "buffer"}
    ref: list[_Recorder | None] = [None]
    hooks = _scope_hooks(model, ref)
    recorder = _Recorder(x, ids, buffers, x.shape[0], constants)
    recorder.keep.append(before)  # the state tensors forward replaces stay alive too, so that no id() is reused
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
    after = _current(model, entries)
    assign: dict[str, int] = {}
    lost: dict[str, str] = {}
    for entry in entries:
        name, new = entry["name"], after[entry["name"]]
        if entry["kind"] == "parameter":
            if new is not before[name] or (name in values and not _same(values[name], new)):
                raise ContractError(
                    f"{what}: its forward changes its parameter {name}, which the grader's copy of the model "
                    "would not do: leave parameters to the optimizer, and compute what forward needs from them "
                    "(e.g. w = self.weight.clamp(-1, 1)) without writing them."
                )
            continue
        if new is before[name] and name in recorder.replaced:  # self.running_mean.data = <a computed tensor>
            assign[name] = recorder.values[id(new)]
            continue
        if new is before[name]:
            continue
        if new is None:
            lost[name] = "by setting it to None"
        elif id(new) in recorder.values:  # self.running_mean = <a tensor forward computed>
            assign[name] = recorder.values[id(new)]
        else:  # a parameter, buffer or plain tensor attribute, as it is
            recorder.nodes.append({"op": "Tensor.clone", "args": [recorder._arg(new)], "kwargs": {}, "scope": ""})
            assign[name] = len(recorder.nodes)
    program, dropped = _prune({"nodes": recorder.nodes, "output": output, "assign": assign}, what, buffers)
    lost |= dropped
    kept = _followed(program, buffers)
    for name in [e["name"] for e in entries if e["name"] in buffers and e["name"] not in lost | assign]:
        if name in recorder.touched:
            lost[name] = f"with {recorder.touched[name]}, which the grader cannot rebuild"
        elif name not in kept and name in values and not _same(values[name], after[name]):
            lost[name] = ("in a way the grader cannot see (no torch call that it records writes it: e.g. an out= "
                          "argument, or an in-place call on a view of the buffer)")  # fmt: skip
    return program, lost


def _followed(program: dict, buffers: set[str]) -> set[str]:
    """The buffers whose every change the program holds: written in place by a kept call, passed to batch norm
    (which updates its running statistics itself) or reassigned."""
    nodes = program["nodes"]
    calls = [(n["op"], n["args"][0] if n["args"] else None) for n in nodes]
    followed = set(ops.buffer_writes(calls, buffers).values()) | set(program.get("assign", {}))
    for node in nodes:
        if node["op"] in ("F.batch_norm", "torch.batch_norm"):
            followed |= set(_state_refs(node)) & buffers
    return followed


def _prune(program: dict, what: str, buffers: set[str] | None = None) -> tuple[dict, dict[str, str]]:
    """Only the calls the output depends on, those that write a buffer in place with what they depend on
    (running statistics kept in forward) and those a reassigned buffer's new value depends on, renumbered; a
    refused call the output depends on raises ContractError. The writes to a buffer are dropped, all of them,
    when one of them needs a refused call, and so is a reassignment: returned as {buffer: why}."""
    nodes, output, assign = program["nodes"], program["output"], program.get("assign", {})
    needed = _needed(nodes, output, what)
    calls = [(n["op"], None if "opaque" in n or not n["args"] else n["args"][0]) for n in nodes]
    writes = ops.buffer_writes(calls, buffers or set())
    dropped: dict[str, str] = {}
    for buffer in dict.fromkeys([*writes.values(), *assign]):
        try:
            if buffer in assign:  # its last value is the one assigned: earlier writes to it are not needed
                needed |= _needed(nodes, assign[buffer], what)
            else:
                needed |= set().union(*(_needed(nodes, v, what) for v, name in writes.items() if name == buffer))
        except ContractError as e:  # the grader cannot rebuild it: dropped, as the output needs none of it
            why = str(e).removeprefix(f"{what}: ").rstrip(".")
            dropped[buffer] = f"with a computation the grader cannot rebuild: {why}"
    order = sorted(needed)
    renumber = {0: 0} | {v: i + 1 for i, v in enumerate(order)}
    kept = [_renumbered(nodes[v - 1], renumber) for v in order]
    pruned: dict[str, Any] = {"nodes": kept, "output": renumber[output]}
    if assign.keys() - dropped.keys():
        pruned["assign"] = {name: renumber[v] for name, v in assign.items() if name not in dropped}
    return pruned, dropped


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


def _why_different(what: str, mode: str, escapes: list[str], first: dict, second: dict, again: dict | None) -> str:
    """Why two captures of one forward pass differ: numbers taken out of torch, a number that changes from one
    pass to the next (``again`` is a third pass on as many inputs as the first, or None), or a forward that depends
    on the batch size."""
    batches = f"a batch of {BATCHES[0]} and one of {BATCHES[1]} inputs"
    if escapes:
        shown = ", ".join(dict.fromkeys(escapes[:50]))
        return (
            f"{what}: its forward takes numbers out of torch ({shown}) and computes its output from them, which a "
            "graph cannot hold: keep the computation in torch (numpy arrays, .item() and .tolist() are not part of "
            f"a model's graph). If it does not, write forward for any batch size: {batches} ran different "
            f"operations in {mode} mode."
        )
    if again is not None and _key(again) != _key(first):
        return (
            f"{what}: its forward runs different operations on two batches of {BATCHES[0]} inputs in {mode} mode"
            f"{_first_difference(first, again)}: a number that it computes in Python changes from one pass to the "
            "next (e.g. a momentum 1 / n from a count n kept in Python), and a graph holds numbers as they were "
            'once. Keep such a number in torch: a buffer (self.register_buffer("n", torch.zeros(())), then '
            "self.n += 1 and self.running_mean.mul_(1 - 1 / self.n) in forward), or use nn.BatchNorm1d(dim, "
            "momentum=None) for a cumulative average."
        )
    return (
        f"{what}: its forward runs different operations for {batches} in {mode} mode"
        f"{_first_difference(first, second)}. Write forward for any batch size (e.g. x.view(x.size(0), -1), not a "
        "fixed number)."
    )


def _key(program: dict) -> str:
    return json.dumps(program, sort_keys=True)


def _first_difference(a: dict, b: dict) -> str:
    for x, y in zip(a["nodes"], b["nodes"], strict=False):
        if _key(x) != _key(y):
            return f" (the first call that differs: {x['op'] if x['op'] == y['op'] else x['op'] + ' or ' + y['op']})"
    return ""


def _refuse_lost(what: str, programs: dict[str, dict], lost: dict[str, str]) -> None:
    """A buffer that forward changed in a way the graph cannot hold, and that a program reads (batch norm's
    running statistics in eval mode): the rebuilt model would read its first value forever."""
    read = {ref for program in programs.values() for node in program["nodes"] for ref in _state_refs(node)}
    for name, why in lost.items():
        if name in read:
            leaf = name.rpartition(".")[2]
            raise ContractError(
                f"{what}: its forward updates its buffer {name}, which the model reads (running statistics), {why}."
                f" Compute the new value with torch operations and assign it (self.{leaf} = (1 - momentum) * "
                f"self.{leaf} + momentum * xmean, in torch.no_grad()), or write it in place with copy_, lerp_, mul_ "
                "or add_; nn.BatchNorm1d and F.batch_norm keep running statistics too."
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
    entries, tensors, _ = _state_of(model)
    if need_parameters and not any(e["kind"] == "parameter" for e in entries):
        raise ContractError(f"{what} returned a module without parameters.")
    snapshot = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    constants: dict[str, torch.Tensor] = {}
    programs: dict[str, dict] = {}
    lost: dict[str, str] = {}  # buffers forward changed in a way no program holds -> why
    was_training = model.training
    try:
        for mode in ("train", "eval"):
            model.train(mode == "train")
            captured, escapes = [], []
            for batch in BATCHES:
                program, lost_now = _trace(model, torch.randn(batch, input_size), entries, constants, what, escapes)
                captured.append(program)
                lost.update({name: why for name, why in lost_now.items() if name not in lost})
            if _key(captured[0]) != _key(captured[1]):
                try:  # the same batch size again: does the program change from one pass to the next?
                    again = _trace(model, torch.randn(BATCHES[0], input_size), entries, constants, what, [])[0]
                except ContractError:
                    again = None
                raise ContractError(_why_different(what, mode, escapes, captured[0], captured[1], again))
            programs[mode] = captured[0]
        _refuse_lost(what, programs, lost)
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
