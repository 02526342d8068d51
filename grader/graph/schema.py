"""The graph format (JSON, validated with pydantic) that the sandbox writes and the trusted side rebuilds.

A program is the list of torch calls one forward pass made, in order. Value 0 is the model's input; node i
makes value i + 1. An argument is plain JSON (int, float, bool, null, a short string) or one of:

- ``{"v": i}``: value i; ``{"p": name}``: a tensor of the model's state (parameter, buffer or constant);
- ``{"b": 1}``: the batch size (the first dimension of the input), wherever the capture saw it as a number;
- ``{"l": [...]}``: a list or tuple; ``{"s": [start, stop, step]}``: a slice; ``{"e": 0}``: ``...``;
- ``{"d": "float32"}``: a dtype; ``{"f": "inf" | "-inf" | "nan"}``: a float JSON cannot spell.

A program also names the buffers forward reassigns (``assign``: {buffer: value}), which hold that value after
the pass. A model has a program for train mode and one for eval mode (a forward that branches on ``self.training`` is
captured both ways) and names its state tensors; their values travel as safetensors beside the JSON.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from grader.graph import ops

VERSION = 1
MAX_NODES = 4000
MAX_STATE = 512
MAX_LIST = 64
MAX_DEPTH = 4
MAX_STRING = 32
NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,7}$")
SCOPE_MAX = 120


class GraphError(ValueError):
    """A graph the trusted side cannot rebuild; the message says why, for the student."""


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Annotated[str, Field(max_length=80)]
    args: Annotated[list[JsonValue], Field(max_length=MAX_LIST)] = []
    kwargs: Annotated[dict[str, JsonValue], Field(max_length=16)] = {}
    #: The student's module that ran the call, e.g. "layers.2 (Linear)" (display only).
    scope: Annotated[str, Field(max_length=SCOPE_MAX)] = ""


class Program(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: Annotated[list[Node], Field(max_length=MAX_NODES)]
    output: int
    #: The buffers forward reassigns (``self.running_mean = (1 - m) * self.running_mean + m * xmean``), with the
    #: value each holds when the pass ends: the rebuilt model puts that value in the buffer's place.
    assign: Annotated[dict[str, int], Field(max_length=MAX_STATE)] = {}


class StateEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["parameter", "buffer", "constant"]

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"invalid state name {name[:80]!r}")
        return name


class ModelGraph(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = VERSION
    state: Annotated[list[StateEntry], Field(max_length=MAX_STATE)]
    train: Program
    eval: Program
    #: Reported by the capture: two train-mode passes on the same input gave the same output although the graph
    #: draws random numbers (torch.manual_seed inside forward fixes the mask). It can only cost the student:
    #: the rebuilt model draws fresh masks either way.
    repeats_random: bool = False

    def program(self, training: bool) -> Program:
        return self.train if training else self.eval

    def parameters(self) -> list[str]:
        return [s.name for s in self.state if s.kind == "parameter"]


def validate_graph(data: Any) -> ModelGraph:
    """A graph from untrusted JSON data, every node's operation and arguments checked; raises GraphError."""
    try:
        graph = ModelGraph.model_validate(data)
    except ValueError as e:
        raise GraphError(f"the captured graph is malformed ({str(e)[:300]})") from None
    names = [s.name for s in graph.state]
    if len(set(names)) != len(names):
        raise GraphError("the captured graph names a state tensor twice")
    known = set(names)
    buffers = {s.name for s in graph.state if s.kind == "buffer"}
    for mode, program in (("train", graph.train), ("eval", graph.eval)):
        for i, node in enumerate(program.nodes):
            if not ops.allowed(node.op):
                raise GraphError(ops.refusal(node.op))
            for key in node.kwargs:
                if key not in ops.KWARGS:
                    raise GraphError(f"its forward passes {key}= to {node.op}, which the grader does not support.")
            for arg in [*node.args, *node.kwargs.values()]:
                _check_arg(arg, i + 1, known, 0)
        if not 0 <= program.output <= len(program.nodes):
            raise GraphError(f"the {mode}-mode graph's output is not one of its values")
        for name, value in program.assign.items():
            if name not in buffers:
                raise GraphError("the captured graph assigns to a tensor that is not a buffer of the model")
            if not 0 <= value <= len(program.nodes):
                raise GraphError(f"the {mode}-mode graph assigns to a buffer a value it does not compute")
    return graph


def _check_arg(arg: Any, values: int, state: set[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise GraphError("an argument in the captured graph is nested too deeply")
    if arg is None or isinstance(arg, bool | int | float):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > 2**40:
            raise GraphError("an integer argument in the captured graph is too large")
        return
    if isinstance(arg, str):
        if len(arg) > MAX_STRING:
            raise GraphError("a string argument in the captured graph is too long")
        return
    if not isinstance(arg, dict) or len(arg) != 1:
        raise GraphError("an argument in the captured graph is not in the graph format")
    ((key, value),) = arg.items()
    if key == "v":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < values:
            raise GraphError("the captured graph uses a value before it is computed")
    elif key == "p":
        if value not in state:
            raise GraphError("the captured graph uses a state tensor it does not name")
    elif key in ("b", "e"):
        if value not in (0, 1):
            raise GraphError("an argument in the captured graph is not in the graph format")
    elif key in ("l", "s"):
        if not isinstance(value, list) or len(value) > (3 if key == "s" else MAX_LIST):
            raise GraphError("a list argument in the captured graph is too long")
        for item in value:
            _check_arg(item, values, state, depth + 1)
    elif key == "d":
        if not isinstance(value, str) or value not in ("float32", "float64", "float16", "bfloat16", "bool", "int64",
                                                       "int32", "uint8"):  # fmt: skip
            raise GraphError(f"the captured graph uses an unsupported dtype {str(value)[:20]!r}")
    elif key == "f":
        if value not in ("inf", "-inf", "nan"):
            raise GraphError("an argument in the captured graph is not in the graph format")
    else:
        raise GraphError("an argument in the captured graph is not in the graph format")
