"""What the sandbox's build task returned, validated: the student's models as graphs and tensors, by key.

Everything here comes from a process where the student's code ran, so it is only data: every graph passes
grader.graph.schema.validate_graph (whitelisted operations, well-formed arguments) and every tensor it names
must be there. A graph that does not pass fails only the models that use it, with a message that says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from grader.graph.schema import GraphError, validate_graph
from grader.sandbox import SandboxFailure, SandboxReply
from grader.text import MESSAGE_LIMIT, TRACEBACK_LIMIT, clean

CONTRACT = ("circle_model", "SIGMAS", "deep_model", "mnist_model", "fold_batchnorm", "tanh_model")


@dataclass
class Built:
    names: dict[str, str] = field(default_factory=dict)
    sigmas: dict[str, float] | None = None
    sigmas_note: str | None = None
    graphs: dict[str, dict] = field(default_factory=dict)  # key -> graph JSON data (validated)
    tensors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # key -> state name -> array
    failures: dict[str, SandboxFailure] = field(default_factory=dict)
    plan: dict[str, dict] = field(default_factory=dict)  # key -> the build request

    def shown(self, key: str) -> str:
        """How the student wrote the call behind a key, e.g. circle_model(0.1)."""
        spec = self.plan.get(key)
        if spec is None:
            return "the folded model" if key == "fold" else key
        args = spec.get("args")
        if args is None and spec.get("sigma_label") is not None:
            label = spec["sigma_label"]
            value = (self.sigmas or {}).get(label)
            return f"circle_model(SIGMAS[{label!r}]{'' if value is None else f' = {value:g}'})"
        return f"{spec['factory']}({', '.join(repr(a) for a in args or [])})"


def validated(reply: SandboxReply, plan: list[dict]) -> Built:
    """The build reply's meta and tensors, kept only in the shapes the grader expects."""
    meta = reply.meta
    built = Built(plan={p["key"]: p for p in plan})
    raw_names = meta.get("names") if isinstance(meta.get("names"), dict) else {}
    built.names = {n: clean(raw_names.get(n, "missing"), 80) for n in CONTRACT}
    built.sigmas = _sigmas(meta.get("sigmas"))
    note = meta.get("sigmas_note")
    built.sigmas_note = clean(note, 300) if isinstance(note, str) else None
    raw_failures = meta.get("failures") if isinstance(meta.get("failures"), dict) else {}
    for key in [*built.plan, "fold"]:
        failure = raw_failures.get(key)
        if failure is None:
            continue
        try:
            f = SandboxFailure.model_validate(failure)
        except ValidationError:
            f = SandboxFailure(kind="exception", message="Building this model failed in a way the grader cannot show.")
        tb = None if f.traceback is None else clean(f.traceback, TRACEBACK_LIMIT, lines=True)
        built.failures[key] = SandboxFailure(kind=f.kind, message=clean(f.message, MESSAGE_LIMIT), traceback=tb)
    graphs = meta.get("graphs") if isinstance(meta.get("graphs"), list) else []
    checked: dict[int, Any] = {}
    models = meta.get("models") if isinstance(meta.get("models"), dict) else {}
    for key in [*built.plan, "fold"]:
        index = models.get(key)
        if key in built.failures or index is None:
            continue
        if not isinstance(index, int) or not 0 <= index < len(graphs):
            built.failures[key] = _failure(built, key, "the sandbox's reply names no graph for it")
            continue
        if index not in checked:
            try:
                checked[index] = validate_graph(graphs[index])
            except GraphError as e:
                checked[index] = e
        graph = checked[index]
        if isinstance(graph, GraphError):
            built.failures[key] = _failure(built, key, str(graph))
            continue
        prefix = f"{key}/"
        state = {n.removeprefix(prefix): a for n, a in reply.tensors.items() if n.startswith(prefix)}
        missing = [s.name for s in graph.state if s.name not in state]
        if missing:
            built.failures[key] = _failure(built, key, f"its tensor {missing[0]} did not come back from the sandbox")
            continue
        built.graphs[key] = graph.model_dump(mode="json")
        built.tensors[key] = {s.name: state[s.name] for s in graph.state}
    return built


def _failure(built: Built, key: str, reason: str) -> SandboxFailure:
    reason = reason[:1].lower() + reason[1:]
    return SandboxFailure(kind="contract", message=clean(f"{built.shown(key)}: {reason}", MESSAGE_LIMIT))


def _sigmas(value: object) -> dict[str, float] | None:
    if not isinstance(value, dict):
        return None
    valid = {k: _positive_float(value[k]) for k in ("small", "good", "big") if k in value}
    return {k: v for k, v in valid.items() if v is not None} or None


def _positive_float(value: object) -> float | None:
    """A finite positive float from JSON data, or None (an int too large for a float included)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number > 0 else None
