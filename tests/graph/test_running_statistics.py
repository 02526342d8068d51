"""Batch norm's running statistics, written every way a student of makemore writes them: the rebuilt model trains
the same way as the student's (the same outputs and running statistics after N steps, the same outputs in eval
mode after training), and what the grader cannot follow is refused with a message that says what to write."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader.graph import ops
from grader.graph.rebuild import GraphModel
from grader.graph.schema import GraphError, validate_graph
from grader.sandbox.inside.capture import capture
from grader.sandbox.protocol import ContractError
from grader.tasks.local import rebuilt, wire


class MakemoreBatchNorm1d(nn.Module):
    """makemore's BatchNorm1d as an nn.Module: the running statistics are reassigned (and become (1, dim))."""

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            xmean, xvar = x.mean(0, keepdim=True), x.var(0, keepdim=True)
        else:
            xmean, xvar = self.running_mean, self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        out = self.gamma * xhat + self.beta
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return out


class NoGradForgotten(MakemoreBatchNorm1d):
    """The same, without torch.no_grad() around the update (the buffers then carry a graph in the student's model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.gamma * (x - self.running_mean) / torch.sqrt(self.running_var + self.eps) + self.beta
        xmean, xvar = x.mean(0), x.var(0)
        self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
        self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta


class FunctionalBatchNorm(nn.Module):
    """F.batch_norm with the module's own buffers and training=self.training."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=0.1, eps=1e-5)  # fmt: skip


class CopyBatchNorm(MakemoreBatchNorm1d):
    """The update written into the buffers with copy_ (the buffer keeps its shape (dim))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.gamma * (x - self.running_mean) / torch.sqrt(self.running_var + self.eps) + self.beta
        xmean, xvar = x.mean(0), x.var(0)
        with torch.no_grad():
            self.running_mean.copy_((1 - self.momentum) * self.running_mean + self.momentum * xmean)
            self.running_var.copy_((1 - self.momentum) * self.running_var + self.momentum * xvar)
        return self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta


class LerpBatchNorm(MakemoreBatchNorm1d):
    """The update written with lerp_ (running + momentum * (batch - running))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.gamma * (x - self.running_mean) / torch.sqrt(self.running_var + self.eps) + self.beta
        xmean, xvar = x.mean(0), x.var(0)
        with torch.no_grad():
            self.running_mean.lerp_(xmean, self.momentum)
            self.running_var.lerp_(xvar, self.momentum)
        return self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta


class DataBatchNorm(MakemoreBatchNorm1d):
    """The update written through .data (no torch call on the buffer that the capture can see)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.gamma * (x - self.running_mean) / torch.sqrt(self.running_var + self.eps) + self.beta
        xmean, xvar = x.mean(0), x.var(0)
        self.running_mean.data = (1 - self.momentum) * self.running_mean.data + self.momentum * xmean.detach()
        self.running_var.data = (1 - self.momentum) * self.running_var.data + self.momentum * xvar.detach()
        return self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta


class DataInPlaceBatchNorm(MakemoreBatchNorm1d):
    """The update written in place through .data (micrograd's p.data += ...)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.gamma * (x - self.running_mean) / torch.sqrt(self.running_var + self.eps) + self.beta
        xmean, xvar = x.mean(0), x.var(0)
        self.running_mean.data.mul_(1 - self.momentum).add_(self.momentum * xmean.detach())
        self.running_var.data *= 1 - self.momentum
        self.running_var.data += self.momentum * xvar.detach()
        return self.gamma * (x - xmean) / torch.sqrt(xvar + self.eps) + self.beta


class Net(nn.Module):
    """makemore's MLP shape: Linear (no bias) -> batch norm -> tanh, twice, then the output layer."""

    def __init__(self, norm) -> None:
        super().__init__()
        self.l1, self.bn1 = nn.Linear(2, 8, bias=False), norm(8)
        self.l2, self.bn2 = nn.Linear(8, 8, bias=False), norm(8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.bn1(self.l1(x)))
        h = torch.tanh(self.bn2(self.l2(h)))
        return self.out(h)


NORMS = {
    "makemore": MakemoreBatchNorm1d,
    "no_grad_forgotten": NoGradForgotten,
    "layer": nn.BatchNorm1d,
    "layer_cumulative": lambda dim: nn.BatchNorm1d(dim, momentum=None),
    "functional": FunctionalBatchNorm,
    "copy": CopyBatchNorm,
    "lerp": LerpBatchNorm,
    "data": DataBatchNorm,
    "data_in_place": DataInPlaceBatchNorm,
    "sequential_makemore": None,  # nn.Sequential of makemore layers
    "sequential_cumulative": None,
}


def make(name: str) -> nn.Module:
    if name == "sequential_makemore":
        return nn.Sequential(nn.Linear(2, 8, bias=False), MakemoreBatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
    if name == "sequential_cumulative":
        return nn.Sequential(nn.Linear(2, 8, bias=False), nn.BatchNorm1d(8, momentum=None), nn.Tanh(), nn.Linear(8, 2))
    return Net(NORMS[name])


def train_both(original: nn.Module, model: nn.Module, steps: int = 6) -> None:
    g = torch.Generator().manual_seed(1)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (original, model)]
    for m in (original, model):
        m.train()
    for step in range(steps):
        x = torch.randn(32 + step, 2, generator=g)  # a batch size of its own on every step
        y = torch.randint(0, 2, (32 + step,), generator=g)
        losses = []
        for m, opt in zip((original, model), opts, strict=True):
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6, msg=f"step {step}")


@pytest.mark.parametrize("name", NORMS)
def test_the_rebuilt_model_keeps_the_same_running_statistics_and_evaluates_the_same(name):
    torch.manual_seed(0)
    student = make(name)
    original = copy.deepcopy(student)  # capturing runs forward passes, which update the statistics
    model = rebuilt(student, 2, name)
    train_both(original, model)
    expected, got = original.state_dict(), model.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].shape == value.shape, key
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(2))
    original.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x), rtol=1e-5, atol=1e-6)
    for m in (original, model):  # and on after evaluating: eval mode changes nothing
        m.train()
    train_both(original, model, steps=2)


def test_a_reassigned_statistic_is_a_buffer_write_of_one_program_for_both_batch_sizes():
    graph, state = wire(make("makemore"), 2)
    assert state["bn1.running_mean"].shape == (8,)  # as the student's model starts
    assigned = graph["train"].get("assign", {})
    assert sorted(assigned) == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"]
    assert "assign" not in graph["eval"] or not graph["eval"]["assign"]
    eval_reads = [a for n in graph["eval"]["nodes"] for a in n["args"] if isinstance(a, dict) and "p" in a]
    assert {"p": "bn1.running_mean"} in eval_reads


def test_the_cumulative_average_reads_the_count_of_batches():
    graph, _ = wire(make("sequential_cumulative"), 2)
    ops_ = [n["op"] for n in graph["train"]["nodes"]]
    assert "Tensor.add_" in ops_ and "F.batch_norm" in ops_
    assert not [s for s in graph["state"] if s["kind"] == "constant"]


class Sorted(MakemoreBatchNorm1d):
    """A running statistic computed with an operation outside the whitelist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        with torch.no_grad():
            median = torch.sort(x, dim=0).values[x.shape[0] // 2]
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * median
        return (x - x.mean(0)) / torch.sqrt(x.var(0) + self.eps)


class IndexAssigned(MakemoreBatchNorm1d):
    """The update written by index assignment, which is no torch call the capture records."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        with torch.no_grad():
            self.running_mean[:] = (1 - self.momentum) * self.running_mean + self.momentum * x.mean(0)
        return (x - x.mean(0)) / torch.sqrt(x.var(0) + self.eps)


class Filled(MakemoreBatchNorm1d):
    """A buffer written with an in-place call outside the whitelist."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        with torch.no_grad():
            self.running_mean.fill_(0.5)
        return (x - x.mean(0)) / torch.sqrt(x.var(0) + self.eps)


class OutArgument(MakemoreBatchNorm1d):
    """The update written with out=, which the grader does not rebuild."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        with torch.no_grad():
            torch.add(0.9 * self.running_mean, 0.1 * x.mean(0), out=self.running_mean)
        return (x - x.mean(0)) / torch.sqrt(x.var(0) + self.eps)


class PythonCounter(MakemoreBatchNorm1d):
    """A cumulative average whose momentum comes from a Python counter: a number the graph cannot hold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        self.count = getattr(self, "count", 0) + 1
        with torch.no_grad():
            self.running_mean.mul_(1 - 1 / self.count).add_(x.mean(0) / self.count)
        return (x - x.mean(0)) / torch.sqrt(x.var(0) + self.eps)


@pytest.mark.parametrize(
    "norm,named",
    [
        (Sorted, ["torch.sort", "running_mean"]),
        (IndexAssigned, ["running_mean", "self.running_mean = "]),
        (Filled, ["Tensor.fill_", "running_mean"]),
        (PythonCounter, ["a number", "changes"]),
        (OutArgument, ["running_mean", "self.running_mean = ", "out="]),
    ],
    ids=["sorted", "index_assigned", "filled", "python_counter", "out"],
)
def test_a_running_statistic_the_grader_cannot_follow_is_refused_by_name(norm, named):
    with pytest.raises(ContractError, match="tanh_model\\(True\\)") as refused:
        capture(nn.Sequential(nn.Linear(2, 4), norm(4)), 2, "tanh_model(True)")
    message = str(refused.value)
    for part in named:
        assert part in message, message
    assert "batch size" not in message or norm is PythonCounter, message


def test_a_statistic_that_nothing_reads_may_stay_behind():
    """Written with an operation outside the whitelist, never read by any forward: ignored, as statistics are."""

    class Kept(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = nn.Linear(2, 3)
            self.register_buffer("seen", torch.zeros(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.l1(x)
            self.seen[:] = h.detach().abs().amax(0)
            self.seen.fill_(1.0)
            return h

    graph, _ = capture(Kept(), 2, "m")
    assert [n["op"] for n in graph["train"]["nodes"]] == ["F.linear"]


def test_copy_and_lerp_are_whitelisted_out_of_place():
    dst, src = torch.zeros(2, 3), torch.arange(3.0)
    assert torch.equal(ops.OPS[ops.canonical("Tensor.copy_")](dst, src), src.expand(2, 3))
    assert ops.OPS[ops.canonical("Tensor.copy_")](dst, src).dtype == dst.dtype
    torch.testing.assert_close(ops.OPS[ops.canonical("Tensor.lerp_")](dst, src, 0.25), 0.25 * src.expand(2, 3))
    assert ops.in_place("Tensor.copy_") and ops.in_place("Tensor.lerp_")


def graph_assigning(assign: dict, kind: str = "buffer") -> dict:
    program = {"nodes": [{"op": "F.linear", "args": [{"v": 0}, {"p": "w"}]}], "output": 1, "assign": assign}
    state = [{"name": "w", "kind": "parameter"}, {"name": "bn.mean", "kind": kind}]
    return {"version": 1, "state": state, "train": program, "eval": {**program, "assign": {}}}


@pytest.mark.parametrize(
    "assign,kind,message",
    [
        ({"w": 1}, "buffer", "assigns to a tensor that is not a buffer"),
        ({"bn.mean": 1}, "constant", "assigns to a tensor that is not a buffer"),
        ({"nope": 1}, "buffer", "assigns to a tensor that is not a buffer"),
        ({"bn.mean": 2}, "buffer", "assigns to a buffer a value it does not compute"),
        ({"bn.mean": -1}, "buffer", "assigns to a buffer a value it does not compute"),
        ({"bn.mean": "x"}, "buffer", "malformed"),
    ],
)
def test_validate_graph_refuses_an_assignment_to_anything_but_a_buffer_of_a_computed_value(assign, kind, message):
    with pytest.raises(GraphError, match=message):
        validate_graph(graph_assigning(assign, kind))


def test_an_assigned_buffer_takes_the_value_and_its_shape_after_the_pass():
    graph = validate_graph(graph_assigning({"bn.mean": 1}))
    model = GraphModel(graph, {"w": torch.eye(2), "bn.mean": torch.zeros(2)})
    x = torch.randn(3, 2, requires_grad=True)
    model.eval()
    model(x)
    assert torch.equal(model.get_buffer("bn.mean"), torch.zeros(2))  # eval's program assigns nothing
    model.train()
    out = model(x)
    assert torch.equal(model.get_buffer("bn.mean"), out.detach()) and model.get_buffer("bn.mean").shape == (3, 2)
    assert not model.get_buffer("bn.mean").requires_grad
    assert "bn.mean" in model.state_dict()
