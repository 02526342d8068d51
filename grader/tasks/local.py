"""Capture and rebuild in this very process, for tests and benchmarks: a model written here goes through what the
grading does to a student's model (captured as in the sandbox's build task, sent as JSON and safetensors,
validated, rebuilt), so that a trusted task can run on it.

Capturing runs the model's code in this process: never call this on a student's model (the grading does that
only in the sandbox's build task)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load, save
from torch import nn

from grader.graph.rebuild import GraphModel
from grader.graph.schema import validate_graph
from grader.sandbox.inside.capture import capture
from grader.tasks.lab import Models


def wire(model: nn.Module, input_size: int, what: str = "the model") -> tuple[dict, dict[str, torch.Tensor]]:
    """The model's graph and tensors as the trusted side receives them (a JSON and a safetensors round trip)."""
    graph, state = capture(model, input_size, what)
    return json.loads(json.dumps(graph, allow_nan=False)), load(save(state))


def rebuilt(model: nn.Module, input_size: int, what: str = "the model") -> GraphModel:
    """The trusted model rebuilt from the capture of ``model``."""
    graph, state = wire(model, input_size, what)
    return GraphModel(validate_graph(graph), state)


def captured_models(built: dict[str, tuple[nn.Module, int]]) -> tuple[Models, dict, dict[str, torch.Tensor]]:
    """Models for a trusted task from {key: (model, input width)}, and the params and inputs that carry them to a
    task (merge them into the task's own, as the grading's session does)."""
    params: dict = {"graphs": {}, "shown": {}}
    inputs: dict[str, torch.Tensor] = {}
    for key, (model, input_size) in built.items():
        graph, state = wire(model, input_size, key)
        params["graphs"][key] = validate_graph(graph).model_dump(mode="json")
        params["shown"][key] = key
        inputs |= {f"{key}/{name}": t for name, t in state.items()}
    return Models(params, inputs), params, inputs
