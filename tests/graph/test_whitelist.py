"""The whitelist, rule by rule: what the capture refuses in the sandbox, what validate_graph refuses in a graph
that comes back from it (whatever wrote it), and what the rebuilt model refuses while it runs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from grader.graph import ops
from grader.graph.rebuild import GraphModel
from grader.graph.schema import GraphError, validate_graph
from grader.sandbox.inside.capture import BATCHES, MAX_CONSTANT_VALUES, capture
from grader.sandbox.protocol import ContractError
from grader.tasks.local import wire


class Head(nn.Module):
    """A Linear layer, then whatever ``then`` does to its output."""

    def __init__(self, then, width: int = 4) -> None:
        super().__init__()
        self.l1 = nn.Linear(2, width)
        self.then = then

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.then(self, self.l1(x))


def captured(then, width: int = 4) -> dict:
    graph, _ = capture(Head(then, width), 2, "circle_model(0.1)")
    return graph


# -- the capture (in the sandbox) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "then,named",
    [
        (lambda m, h: torch.sort(h, dim=1).values, "torch.sort"),
        (lambda m, h: torch.cat([h, h], dim=1), "torch.cat"),
        (lambda m, h: torch.stack([h, h]).sum(0), "torch.stack"),
        (lambda m, h: torch.from_numpy(h.detach().numpy() * 2.0), "Tensor.numpy"),
        (lambda m, h: h * h.std().item(), "Tensor.item"),
        (lambda m, h: torch.tensor(h.detach().numpy()), "torch.tensor with an argument of type ndarray"),
        (lambda m, h: torch.cumsum(h, dim=1), "torch.cumsum"),
        (lambda m, h: h.max(dim=1, keepdim=True).values + h, "Tensor.max in a form that returns several tensors"),
    ],
    ids=["sort", "cat", "stack", "numpy", "item", "tensor_of_numpy", "cumsum", "max_with_indices"],
)
def test_an_operation_outside_the_whitelist_that_reaches_the_output_is_refused_by_name(then, named):
    with pytest.raises(ContractError, match="circle_model\\(0.1\\)") as refused:
        captured(then)
    assert named in str(refused.value)


def test_the_refusal_says_what_to_write_instead():
    with pytest.raises(ContractError) as refused:
        captured(lambda m, h: torch.cat([h, h], dim=1))
    assert ops.HINTS["torch.cat"] in str(refused.value)


@pytest.mark.parametrize(
    "then",
    [
        lambda m, h: (torch.sort(h, dim=1), h)[1],
        lambda m, h: (torch.cat([h, h]).detach().numpy(), h)[1],
        lambda m, h: (setattr(m, "seen", h.detach().numpy().tolist()), h)[1],
        lambda m, h: (print(torch.stack([h, h]).std().item()), h)[1],
    ],
    ids=["sort", "cat_then_numpy", "tolist", "printed"],
)
def test_an_operation_outside_the_whitelist_that_does_not_reach_the_output_is_ignored(then, capsys):
    graph = captured(then)
    for mode in ("train", "eval"):
        assert [n["op"] for n in graph[mode]["nodes"]] == ["F.linear"]
    validate_graph(graph)


@pytest.mark.parametrize(
    "then",
    [
        lambda m, h: h + 0.0 if h.shape[0] > 100 else h,  # one branch for 97 inputs, another for 131
        lambda m, h: h * 2.0 if h.shape[0] == BATCHES[0] else h,
        lambda m, h: h.reshape(2 * h.shape[0], -1).reshape(h.shape[0], -1),  # 2 * batch is a plain number
    ],
    ids=["branch", "only_for_one_batch", "twice_the_batch"],
)
def test_a_forward_that_depends_on_the_batch_size_as_a_constant_is_refused(then):
    with pytest.raises(ContractError, match="different operations for a batch of 97 and one of 131 inputs"):
        captured(then)


def test_a_fixed_batch_size_is_the_students_own_error():
    with pytest.raises(RuntimeError, match="shape"):  # reported as the student's exception, with its traceback
        captured(lambda m, h: h.view(BATCHES[0], -1))


@pytest.mark.parametrize("used", [True, False], ids=["in_the_output", "for_statistics"])
def test_a_plain_tensor_attribute_over_the_limit_is_refused(used):
    model = Head(lambda m, h: h + m.table[0] if used else (m.table[0].sum().item(), h)[1])
    model.table = torch.ones(MAX_CONSTANT_VALUES // 4 + 1, 4)  # neither a parameter nor a buffer
    limit = f"of {MAX_CONSTANT_VALUES + 4} values .* \\(at most {MAX_CONSTANT_VALUES}\\)"
    with pytest.raises(ContractError, match=limit):
        capture(model, 2, "m")
    model.table = torch.ones(MAX_CONSTANT_VALUES // 4, 4)
    graph, state = capture(model, 2, "m")
    kinds = [s["kind"] for s in graph["state"]]
    assert kinds == (["parameter", "parameter", "constant"] if used else ["parameter", "parameter"])
    assert len(state) == len(kinds)


def test_the_same_attribute_as_a_buffer_is_state():
    model = Head(lambda m, h: h + m.table[0])
    model.register_buffer("table", torch.ones(MAX_CONSTANT_VALUES, 4))
    graph, state = capture(model, 2, "m")
    assert {"name": "table", "kind": "buffer"} in graph["state"] and state["table"].shape == (MAX_CONSTANT_VALUES, 4)


def test_a_model_without_parameters_or_a_forward_without_a_tensor_is_refused():
    with pytest.raises(ContractError, match="without parameters"):
        capture(nn.ReLU(), 2, "circle_model(None)")
    with pytest.raises(ContractError, match="must return a tensor, but its forward returned tuple"):
        captured(lambda m, h: (h, h))


# -- validate_graph (the trusted side, on whatever came back) -----------------------------------------------------


def graph_with(*nodes: dict, output: int | None = None, state: list | None = None) -> dict:
    program = {"nodes": list(nodes), "output": len(nodes) if output is None else output}
    state = [{"name": "w", "kind": "parameter"}] if state is None else state
    return {"version": 1, "state": state, "train": program, "eval": program}


def node(op: str, *args, **kwargs) -> dict:
    return {"op": op, "args": list(args), "kwargs": kwargs}


LINEAR = node("F.linear", {"v": 0}, {"p": "w"})


def test_a_well_formed_graph_passes():
    graph = validate_graph(graph_with(LINEAR, node("torch.relu", {"v": 1})))
    assert graph.parameters() == ["w"]


@pytest.mark.parametrize(
    "graph,message",
    [
        (graph_with(node("torch.sort", {"v": 0})), "uses torch.sort"),
        (graph_with(node("os.system", "ls")), "uses os.system"),
        (graph_with(node("Tensor.__reduce_ex__", {"v": 0})), "uses Tensor.__reduce_ex__"),
        (graph_with(node("torch.load", "/etc/passwd")), "uses torch.load"),
        (graph_with(node("torch.relu", {"v": 0}, out={"v": 0})), "passes out= to torch.relu"),
        (graph_with(node("F.linear", {"v": 0}, {"p": "w"}, __class__="x")), "passes __class__= to F.linear"),
        (graph_with(node("torch.relu", {"v": 1})), "uses a value before it is computed"),
        (graph_with(LINEAR, node("torch.relu", {"v": 2})), "uses a value before it is computed"),
        (graph_with(node("torch.relu", {"v": -1})), "uses a value before it is computed"),
        (graph_with(node("torch.relu", {"v": True})), "uses a value before it is computed"),
        (graph_with(node("F.linear", {"v": 0}, {"p": "nope"})), "uses a state tensor it does not name"),
        (graph_with(node("Tensor.to", {"v": 0}, {"d": "complex64"})), "unsupported dtype 'complex64'"),
        (graph_with(node("Tensor.to", {"v": 0}, {"d": "object"})), "unsupported dtype"),
        (graph_with(node("Tensor.view", {"v": 0}, {"l": [{"l": [{"l": [{"l": [{"l": [1]}]}]}]}]})), "nested too"),
        (graph_with(node("Tensor.view", {"v": 0}, 2**41)), "integer argument in the captured graph is too large"),
        (graph_with(node("Tensor.view", {"v": 0}, -(2**41))), "too large"),
        (graph_with(node("Tensor.view", {"v": 0}, "x" * 33)), "string argument in the captured graph is too long"),
        (graph_with(node("Tensor.view", {"v": 0}, {"s": [1, 2, 3, 4]})), "too long"),
        (graph_with(node("Tensor.view", {"v": 0}, {"x": 1})), "not in the graph format"),
        (graph_with(node("Tensor.view", {"v": 0}, {"v": 0, "p": "w"})), "not in the graph format"),
        (graph_with(node("Tensor.view", {"v": 0}, [1, 2])), "not in the graph format"),
        (graph_with(node("Tensor.view", {"v": 0}, {"b": 7})), "not in the graph format"),
        (graph_with(node("Tensor.mul", {"v": 0}, {"f": "1e400"})), "not in the graph format"),
        (graph_with(LINEAR, output=2), "output is not one of its values"),
        (graph_with(LINEAR, output=-1), "output is not one of its values"),
        (graph_with(LINEAR, state=[{"name": "w", "kind": "parameter"}] * 2), "names a state tensor twice"),
        (graph_with(LINEAR, state=[{"name": "../w", "kind": "parameter"}]), "invalid state name"),
        (graph_with(LINEAR, state=[{"name": "w", "kind": "code"}]), "malformed"),
        ({**graph_with(LINEAR), "version": 2}, "malformed"),
        ({**graph_with(LINEAR), "code": "import os"}, "malformed"),
        (graph_with(*[node("torch.relu", {"v": i}) for i in range(4001)]), "malformed"),
        ("not a graph", "malformed"),
    ],
)
def test_validate_graph_refuses(graph, message):
    with pytest.raises(GraphError, match=message.replace("(", "\\(").replace(")", "\\)")):
        validate_graph(graph)


def test_validate_graph_checks_the_eval_program_too():
    graph = graph_with(LINEAR)
    graph["eval"] = {"nodes": [node("torch.sort", {"v": 0})], "output": 1}
    with pytest.raises(GraphError, match="torch.sort"):
        validate_graph(graph)


def test_every_whitelisted_operation_runs_its_trusted_twin():
    assert all(callable(fn) for fn in ops.OPS.values())
    dangerous = ("__reduce__", "__reduce_ex__", "__setstate__", "__getattribute__", "__class__", "__init__", "load")
    assert not [name for name in ops.OPS if name.endswith(dangerous)]
    assert ops.canonical("Tensor.relu_") == "Tensor.relu" and ops.canonical("Tensor.__iadd__") == "Tensor.__add__"
    assert ops.allowed("F.relu_") and not ops.allowed("torch.sort_")


# -- GraphModel (the rebuilt module) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["training", "forward", "eval", "_parameters", "_modules", "state_dict", "_lg_graph", "_lg_kinds", "_lg_paths",
     "_lg_programs", "_lg_observers", "eval.weight", "l1.forward", "l1.training"],
)  # fmt: skip
def test_state_names_that_collide_with_module_attributes_are_refused(name):
    state = [{"name": "l1.weight", "kind": "parameter"}, {"name": name, "kind": "buffer"}]
    graph = validate_graph(graph_with(node("F.linear", {"v": 0}, {"p": "l1.weight"}), state=state))
    with pytest.raises(GraphError, match=f"tensor name {name} cannot be rebuilt"):
        GraphModel(graph, {"l1.weight": torch.ones(2, 2), name: torch.ones(2)})


def test_a_state_name_that_is_the_prefix_of_another_is_refused_either_way():
    for names in (["a", "a.b"], ["a.b", "a"]):
        state = [{"name": n, "kind": "parameter"} for n in names]
        graph = validate_graph(graph_with(node("F.linear", {"v": 0}, {"p": "a.b"}), state=state))
        with pytest.raises(GraphError, match="cannot be rebuilt"):
            GraphModel(graph, {"a": torch.ones(2, 2), "a.b": torch.ones(2, 2)})


def test_a_missing_tensor_is_refused():
    graph = validate_graph(graph_with(LINEAR))
    with pytest.raises(GraphError, match="tensor w did not come back from the sandbox"):
        GraphModel(graph, {})
    with pytest.raises(GraphError, match="tensor w did not come back"):
        GraphModel(graph, {"W": torch.ones(2, 2)})


def test_an_integer_parameter_is_refused():
    graph = validate_graph(graph_with(LINEAR))
    with pytest.raises(GraphError, match="parameter w is not a floating-point tensor"):
        GraphModel(graph, {"w": torch.ones(2, 2, dtype=torch.int64)})


def test_the_rebuilt_model_gets_copies_of_the_tensors():
    w = torch.ones(2, 2)
    model = GraphModel(validate_graph(graph_with(LINEAR)), {"w": w})
    with torch.no_grad():
        model.w.mul_(3)
    assert torch.equal(w, torch.ones(2, 2))


@pytest.mark.parametrize(
    "factory",
    [
        node("torch.zeros", {"b": 1}, ops.MAX_CREATED),
        node("torch.ones", {"l": [{"b": 1}, ops.MAX_CREATED]}),
        node("torch.rand", size={"l": [{"b": 1}, ops.MAX_CREATED]}),
        node("torch.randn", {"b": 1}, 1000, 1000),
        node("torch.empty", {"l": [ops.MAX_CREATED + 1]}),
        node("torch.full", {"l": [{"b": 1}, ops.MAX_CREATED]}, 0.5),
    ],
    ids=["zeros", "ones", "rand", "randn", "empty", "full"],
)
def test_a_factory_creating_more_than_the_limit_fails_when_the_model_runs(factory):
    graph = validate_graph(graph_with(LINEAR, factory, output=1))
    model = GraphModel(graph, {"w": torch.ones(2, 2)})
    with pytest.raises(GraphError, match=f"{factory['op']} creates a tensor of \\d+ values inside forward"):
        model(torch.ones(60, 2))


def test_a_factory_within_the_limit_runs_on_the_models_device():
    graph = validate_graph(graph_with(LINEAR, node("torch.ones", {"b": 1}, 2), node("Tensor.add", {"v": 1}, {"v": 2})))
    model = GraphModel(graph, {"w": torch.eye(2)})
    assert torch.equal(model(torch.zeros(3, 2)), torch.ones(3, 2))


def test_an_operation_that_fails_on_the_trusted_side_is_a_graph_error():
    graph = validate_graph(graph_with(LINEAR, node("Tensor.view", {"v": 1}, 7, -1)))
    model = GraphModel(graph, {"w": torch.eye(2)})
    with pytest.raises(GraphError, match="Tensor.view failed when the grader ran the model"):
        model(torch.zeros(3, 2))


def test_a_bias_folded_into_a_unit_whose_product_is_also_returned_is_not_lost():
    """A hand-made graph: the product x @ w is both the output and the input of an addition."""
    state = [{"name": "w", "kind": "parameter"}, {"name": "b", "kind": "parameter"}]
    graph = validate_graph(
        graph_with(node("Tensor.matmul", {"v": 0}, {"p": "w"}), node("Tensor.add", {"v": 1}, {"p": "b"}), output=1,
                   state=state)
    )  # fmt: skip
    model = GraphModel(graph, {"w": torch.eye(2) * 2, "b": torch.ones(2)})
    assert torch.equal(model(torch.ones(3, 2)), torch.full((3, 2), 2.0))


def test_the_wire_round_trip_keeps_a_random_and_a_float_argument():
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.l1(x).clamp(min=float("-inf"), max=1e30) * (torch.rand_like(x) > 0.25)

    model = Noisy()
    graph, state = wire(copy.deepcopy(model), 2)
    rebuilt = GraphModel(validate_graph(graph), state)
    x = torch.randn(7, 2)
    torch.manual_seed(3)
    expected = model(x)
    torch.manual_seed(3)
    assert torch.equal(rebuilt(x), expected)
    assert np.isfinite(rebuilt(x).detach().numpy()).all()


def test_buffer_writes_are_kept_only_when_every_write_to_the_buffer_can_be_rebuilt():
    def update(m, h):
        with torch.no_grad():
            m.kept.mul_(0.9).add_(0.1 * h.var(0))
            m.dropped.mul_(0.9).add_(0.1 * torch.sort(h, dim=0).values.mean(0))  # torch.sort is refused
        return h

    model = Head(update)
    model.register_buffer("kept", torch.ones(4))
    model.register_buffer("dropped", torch.zeros(4))
    graph = validate_graph(capture(model, 2, "m")[0])
    for program in (graph.train, graph.eval):  # forward writes in both modes here
        written = [(n.op, n.args[0]) for n in program.nodes if ops.in_place(n.op)]
        assert written == [("Tensor.mul_", {"p": "kept"}), ("Tensor.add_", {"v": 2})]
        assert "torch.sort" not in [n.op for n in program.nodes]
