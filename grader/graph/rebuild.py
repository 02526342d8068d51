"""Rebuilding a captured model on the trusted side: an nn.Module that runs only whitelisted torch operations.

The module has the student's parameter and buffer names (``layers.0.weight``), so that optimizers,
``functional_call`` and ``state_dict`` work on it as on the original. Matrix products with a parameter
(``F.linear``, ``x @ W.T + b``, ``torch.addmm``, ``x @ W``) become *linear units*: the grader's probes see each
unit's input, output, weight and bias, in the order the forward pass runs them, however the student wrote it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grader.graph import ops
from grader.graph.schema import GraphError, ModelGraph, Node, Program

_TRANSPOSES = {"Tensor.t", "torch.t", "Tensor.T", "Tensor.mT"}
_MATMULS = {"Tensor.matmul", "torch.matmul", "Tensor.__matmul__", "Tensor.mm", "torch.mm"}
_ADDS = {"Tensor.add", "torch.add", "Tensor.__add__", "Tensor.__radd__", "Tensor.add_", "Tensor.__iadd__"}


@dataclass(frozen=True)
class LinearUnit:
    """One matrix product with a weight of the model's state, plus the bias added to it."""

    weight: str
    bias: str | None
    transposed: bool  # the weight is stored (in, out) and used as x @ W
    scope: str


@dataclass
class _Step:
    fn: Callable[..., torch.Tensor] | None
    args: list[Any]
    kwargs: dict[str, Any]
    op: str
    unit: LinearUnit | None = None
    factory: bool = False
    writes: str | None = None  # the buffer an in-place call writes (running statistics), which keeps its result


@dataclass
class _Compiled:
    steps: list[_Step]
    output: int
    units: list[LinearUnit] = field(default_factory=list)
    assign: dict[str, int] = field(default_factory=dict)  # buffer -> the value forward reassigns it to


class GraphModel(nn.Module):
    """The rebuilt model. ``observe(fn)`` calls fn(index, unit, input, output) for each linear unit it runs."""

    def __init__(self, graph: ModelGraph, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._lg_graph = graph
        self._lg_observers: list[Callable[[int, LinearUnit, torch.Tensor, torch.Tensor], None]] = []
        # every attribute of this class exists before the state is placed, so that no state name can take one
        self._lg_kinds: dict[str, str] = {}
        self._lg_paths: dict[str, list[str]] = {}
        self._lg_programs: dict[bool, _Compiled] = {}
        kinds = self._lg_kinds
        for entry in graph.state:
            t = tensors.get(entry.name)
            if t is None:
                raise GraphError(f"the model's tensor {entry.name} did not come back from the sandbox")
            kinds[entry.name] = entry.kind
            t = t.detach().clone()
            if entry.kind == "parameter":
                if not t.is_floating_point():
                    raise GraphError(f"the parameter {entry.name} is not a floating-point tensor")
                self._place(entry.name, nn.Parameter(t))
            else:
                self._place(entry.name, t, buffer=True)
        self._lg_paths.update({name: name.split(".") for name in kinds})
        self._lg_programs.update({True: self._compile(graph.train), False: self._compile(graph.eval)})

    # -- building -----------------------------------------------------------------------------------------------
    def _place(self, name: str, value: torch.Tensor, buffer: bool = False) -> None:
        *path, leaf = name.split(".")
        owner: nn.Module = self
        for part in path:
            child = owner._modules.get(part)
            if child is None:
                if hasattr(owner, part):
                    raise GraphError(f"the model's tensor name {name} cannot be rebuilt (its part {part!r} is taken)")
                child = nn.Module()
                owner.add_module(part, child)
            owner = child
        try:
            if buffer:
                owner.register_buffer(leaf, value)
            else:
                owner.register_parameter(leaf, value)  # type: ignore[arg-type]
        except (KeyError, TypeError) as e:
            raise GraphError(f"the model's tensor name {name} cannot be rebuilt ({e})") from None

    def _compile(self, program: Program) -> _Compiled:
        nodes = list(program.nodes)
        steps = [self._step(n) for n in nodes]
        buffers = {name for name, kind in self._lg_kinds.items() if kind == "buffer"}
        for value, name in ops.buffer_writes([(n.op, n.args[0] if n.args else None) for n in nodes], buffers).items():
            steps[value - 1].writes = name
        _find_units(nodes, steps, self, program.output)
        units = [s.unit for s in steps if s.unit is not None]
        return _Compiled(steps, program.output, units, dict(program.assign))  # type: ignore[arg-type]

    def _step(self, node: Node) -> _Step:
        name = ops.canonical(node.op)
        kwargs = {k: v for k, v in node.kwargs.items() if k not in ops.DROPPED_KWARGS}
        return _Step(ops.OPS[name], list(node.args), kwargs, name, factory=name in ops.FACTORIES or name ==
                     "torch.tensor")  # fmt: skip

    # -- state --------------------------------------------------------------------------------------------------
    def tensor(self, name: str) -> torch.Tensor:
        """A state tensor by its name (what functional_call put in its place, while it does)."""
        value: Any = self
        for part in self._lg_paths[name]:
            value = getattr(value, part)
        return value

    def kind(self, name: str) -> str:
        return self._lg_kinds[name]

    def weight(self, unit: LinearUnit) -> torch.Tensor:
        """The unit's weight as (out, in), like nn.Linear's."""
        w = self.tensor(unit.weight)
        return w.t() if unit.transposed else w

    def weight_grad(self, unit: LinearUnit) -> torch.Tensor | None:
        g = self.tensor(unit.weight).grad
        return None if g is None else (g.t() if unit.transposed else g)

    def bias(self, unit: LinearUnit) -> torch.Tensor | None:
        return None if unit.bias is None else self.tensor(unit.bias)

    def units(self, training: bool | None = None) -> list[LinearUnit]:
        """The linear units in the order forward runs them (in the model's current mode by default)."""
        return list(self._lg_programs[self.training if training is None else training].units)

    @property
    def graph(self) -> ModelGraph:
        return self._lg_graph

    def ops(self, training: bool | None = None) -> list[str]:
        """The operations forward runs, in order (linear units as "linear")."""
        steps = self._lg_programs[self.training if training is None else training].steps
        return ["linear" if s.unit is not None else s.op for s in steps if s.fn is not None]

    def observe(self, fn: Callable[[int, LinearUnit, torch.Tensor, torch.Tensor], None]) -> Callable[[], None]:
        self._lg_observers.append(fn)
        return lambda: self._lg_observers.remove(fn)

    # -- running ------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        program = self._lg_programs[self.training]
        values: list[Any] = [x]
        batch = x.shape[0]
        k = 0
        for step in program.steps:
            if step.fn is None:  # folded into the linear unit that follows
                values.append(None)
                continue
            if step.unit is not None:
                unit = step.unit
                inp = self._resolve(step.args[0], values, batch)
                out = F.linear(inp, self.weight(unit), self.bias(unit))
                for observer in self._lg_observers:
                    observer(k, unit, inp, out)
                k += 1
                values.append(out)
                continue
            args = [self._resolve(a, values, batch) for a in step.args]
            kwargs = {key: self._resolve(v, values, batch) for key, v in step.kwargs.items()}
            if step.factory:
                kwargs["device"] = x.device
                _check_size(step.op, args, kwargs)
            try:
                values.append(step.fn(*args, **kwargs))
                if step.writes is not None:  # in place in the student's model: the buffer keeps the result
                    with torch.no_grad():
                        self.tensor(step.writes).copy_(values[-1])
            except (RuntimeError, TypeError, ValueError, IndexError) as e:
                raise GraphError(f"{step.op} failed when the grader ran the model ({str(e)[:300]})") from None
        for name, value in program.assign.items():  # self.running_mean = ... in the student's forward
            new = values[value]
            if not isinstance(new, torch.Tensor):
                raise GraphError(f"the model's forward assigns to its buffer {name} something that is not a tensor")
            self._reassign(name, new.detach())
        out = values[program.output]
        if not isinstance(out, torch.Tensor):
            raise GraphError("the model's forward does not return a tensor")
        return out

    def _reassign(self, name: str, value: torch.Tensor) -> None:
        """The buffer ``name`` becomes ``value`` (its shape may change: makemore's (dim,) statistics become (1, dim)),
        as with the student's ``self.running_mean = value``."""
        *path, leaf = self._lg_paths[name]
        owner: nn.Module = self
        for part in path:
            owner = owner._modules[part]  # type: ignore[assignment]
        owner._buffers[leaf] = value

    def _resolve(self, arg: Any, values: list[Any], batch: int) -> Any:
        if isinstance(arg, dict):
            ((key, value),) = arg.items()
            if key == "v":
                return values[value]
            if key == "p":
                return self.tensor(value)
            if key == "b":
                return batch
            if key == "l":
                return [self._resolve(a, values, batch) for a in value]
            if key == "s":
                return slice(*(self._resolve(a, values, batch) for a in value))
            if key == "e":
                return Ellipsis
            if key == "d":
                return ops.dtype_of(value)
            if key == "f":
                return float(value)
        return arg


def _check_size(op: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    sizes = kwargs.get("size", args[0] if args and isinstance(args[0], list) else args)
    if op == "torch.full" and args:
        sizes = args[0]
    if op == "torch.tensor":
        return
    numbers = [s for s in (sizes if isinstance(sizes, list) else [sizes]) if isinstance(s, int)]
    if numbers and math.prod(numbers) > ops.MAX_CREATED:
        raise GraphError(f"{op} creates a tensor of {math.prod(numbers)} values inside forward")


def _state_ref(arg: Any) -> str | None:
    return arg["p"] if isinstance(arg, dict) and "p" in arg else None


def _value_ref(arg: Any) -> int | None:
    return arg["v"] if isinstance(arg, dict) and "v" in arg else None


def _uses(nodes: list[Node]) -> dict[int, int]:
    count: dict[int, int] = {}

    def walk(a: Any) -> None:
        if isinstance(a, dict):
            if "v" in a:
                count[a["v"]] = count.get(a["v"], 0) + 1
            for key in ("l", "s"):
                for item in a.get(key) or []:
                    walk(item)

    for n in nodes:
        for a in [*n.args, *n.kwargs.values()]:
            walk(a)
    return count


def _find_units(nodes: list[Node], steps: list[_Step], model: GraphModel, output: int) -> None:
    """Mark the matrix products with a 2-D state tensor as linear units (with the bias added right after them)."""

    def matrix(name: str | None) -> bool:
        return name is not None and model.tensor(name).dim() == 2 and model.tensor(name).is_floating_point()

    def vector(name: str | None) -> bool:
        return name is not None and model.tensor(name).dim() == 1

    transposed_of: dict[int, str] = {}  # value -> weight name, for W.t(), W.T, W.transpose(0, 1), W.permute(1, 0)
    for i, node in enumerate(nodes):
        value = i + 1
        name = ops.canonical(node.op)
        first = _state_ref(node.args[0]) if node.args else None
        if name in _TRANSPOSES and matrix(first) and len(node.args) == 1:
            transposed_of[value] = first  # type: ignore[assignment]
        elif name in ("Tensor.transpose", "torch.transpose") and matrix(first) and len(node.args) == 3:
            if sorted(a % 2 if isinstance(a, int) else -9 for a in node.args[1:]) == [0, 1]:
                transposed_of[value] = first  # type: ignore[assignment]
        elif name == "Tensor.permute" and matrix(first) and node.args[1:] in ([1, 0], [{"l": [1, 0]}]):
            transposed_of[value] = first  # type: ignore[assignment]
    uses = _uses(nodes)
    uses[output] = uses.get(output, 0) + 1  # the value forward returns is used too
    for i, node in enumerate(nodes):
        name = ops.canonical(node.op)
        step = steps[i]
        if name == "F.linear" and matrix(_state_ref(node.args[1] if len(node.args) > 1 else node.kwargs.get("weight"))):
            weight = _state_ref(node.args[1] if len(node.args) > 1 else node.kwargs.get("weight"))
            bias_arg = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
            bias = _state_ref(bias_arg)
            if bias_arg is not None and not vector(bias):
                continue
            step.unit = LinearUnit(weight, bias, False, node.scope)  # type: ignore[arg-type]
            step.args = [node.args[0] if node.args else node.kwargs.get("input")]
        elif name in _MATMULS and len(node.args) == 2 and not node.kwargs:
            rhs = node.args[1]
            if _value_ref(rhs) in transposed_of:
                step.unit = LinearUnit(transposed_of[_value_ref(rhs)], None, False, node.scope)  # type: ignore[index]
            elif matrix(_state_ref(rhs)):
                step.unit = LinearUnit(_state_ref(rhs), None, True, node.scope)  # type: ignore[arg-type]
            else:
                continue
            step.args = [node.args[0]]
        elif name == "torch.addmm" and len(node.args) == 3 and not node.kwargs and vector(_state_ref(node.args[0])):
            rhs = node.args[2]
            bias = _state_ref(node.args[0])
            if _value_ref(rhs) in transposed_of:
                step.unit = LinearUnit(transposed_of[_value_ref(rhs)], bias, False, node.scope)  # type: ignore[index]
            elif matrix(_state_ref(rhs)):
                step.unit = LinearUnit(_state_ref(rhs), bias, True, node.scope)  # type: ignore[arg-type]
            else:
                continue
            step.args = [node.args[1]]
    # a bias added right after a unit without one, when nothing else uses the product
    for i, node in enumerate(nodes):
        if ops.canonical(node.op) not in {ops.canonical(a) for a in _ADDS} or len(node.args) != 2 or node.kwargs:
            continue
        a, b = node.args
        product, bias = (_value_ref(a), _state_ref(b)) if _value_ref(a) is not None else (_value_ref(b), _state_ref(a))
        if product is None or not vector(bias) or product < 1 or uses.get(product) != 1 or steps[i].writes:
            continue
        before = steps[product - 1]
        if before.unit is None or before.unit.bias is not None:
            continue
        steps[i].unit = LinearUnit(before.unit.weight, bias, before.unit.transposed, before.unit.scope)
        steps[i].args = before.args
        before.fn, before.unit = None, None
    for step in steps:
        if step.unit is not None:
            step.fn = F.linear


def rebuild(graph: ModelGraph, tensors: dict[str, torch.Tensor]) -> GraphModel:
    """The trusted model of a validated graph and its tensors (raises GraphError when it cannot be built)."""
    return GraphModel(graph, tensors)


@dataclass
class LinearTrace:
    """The input and output of every linear unit run while it is active (and the gradient reaching each
    output when ``grads`` is set), in execution order."""

    units: list[LinearUnit] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    output_grads: dict[int, torch.Tensor] = field(default_factory=dict)
    grads: bool = False
    keep_graph: bool = False  # the inputs as computed (retain_grad-able), not detached

    def __call__(self, _k: int, unit: LinearUnit, inp: torch.Tensor, out: torch.Tensor) -> None:
        index = len(self.outputs)
        self.units.append(unit)
        self.inputs.append(inp if self.keep_graph else inp.detach())
        self.outputs.append(out.detach())
        if self.grads and out.requires_grad:
            out.register_hook(lambda g, i=index: self.output_grads.__setitem__(i, g.detach()))


@contextmanager
def traced(model: GraphModel, grads: bool = False, keep_graph: bool = False) -> Iterator[LinearTrace]:
    trace = LinearTrace(grads=grads, keep_graph=keep_graph)
    remove = model.observe(trace)
    try:
        yield trace
    finally:
        remove()
