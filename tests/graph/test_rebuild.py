"""A model captured in the sandbox and rebuilt on the trusted side computes what the student's model computes, in
eval and in train mode, and trains the same way, however the student wrote it; its linear units come in the
order forward runs them."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader.graph.rebuild import GraphModel, traced
from grader.tasks.local import rebuilt, wire


class Functional(nn.Module):
    """Layers held as nn.Linear, called through F.linear and F.relu."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(2, 6), nn.Linear(6, 3), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.linear(x, self.l1.weight, self.l1.bias))
        x = F.relu(F.linear(x, self.l2.weight, self.l2.bias))
        return F.linear(x, self.l3.weight, self.l3.bias)


class MatmulTransposed(nn.Module):
    """Weights stored (out, in) like nn.Linear's and used as x @ W.T + b."""

    def __init__(self) -> None:
        super().__init__()
        self.W1, self.b1 = nn.Parameter(torch.randn(6, 2)), nn.Parameter(torch.randn(6) * 0.1)
        self.W2, self.b2 = nn.Parameter(torch.randn(2, 6) * 0.4), nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(x @ self.W1.T + self.b1)
        return h @ self.W2.t() + self.b2


class MatmulInOut(nn.Module):
    """Weights stored (in, out) and used as x @ W + b (the bias also on the left)."""

    def __init__(self) -> None:
        super().__init__()
        self.W1, self.b1 = nn.Parameter(torch.randn(2, 6)), nn.Parameter(torch.randn(6) * 0.1)
        self.W2, self.b2 = nn.Parameter(torch.randn(6, 2) * 0.4), nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b1 + x @ self.W1)
        return h @ self.W2 + self.b2


class Addmm(nn.Module):
    """torch.addmm with the weight transposed (out, in) and as it is (in, out)."""

    def __init__(self) -> None:
        super().__init__()
        self.W1, self.b1 = nn.Parameter(torch.randn(6, 2)), nn.Parameter(torch.randn(6) * 0.1)
        self.W2, self.b2 = nn.Parameter(torch.randn(6, 2) * 0.4), nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b2, torch.relu(torch.addmm(self.b1, x, self.W1.t())), self.W2)


class Loop(nn.Module):
    """An nn.ModuleList run in a loop."""

    def __init__(self, depth: int = 5) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(2, 8)] + [nn.Linear(8, 8) for _ in range(depth - 2)] + [nn.Linear(8, 2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class InPlace(nn.Module):
    """In-place ReLU as a layer and as a method, and an in-place addition (before relu_: relu_'s backward needs its
    output as it left it, so ``h.relu_(); h += 0.5`` cannot train in PyTorch either)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 6), nn.ReLU(inplace=True), nn.Linear(6, 6))
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        h += 0.5
        h.relu_()
        return self.out(h)


class HandDropout(nn.Module):
    """Dropout written by hand with a torch.rand_like mask, only in training (self.training)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.l1, self.l2, self.l3 = nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        mask = (torch.rand_like(x) > self.p).float()
        return x * mask / (1 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.l1(x)))
        x = self.drop(torch.relu(self.l2(x)))
        return self.l3(x)


class PaperDropout(nn.Module):
    """Branches on self.training both ways: nn.Dropout-like masks in training, scaled weights at test time."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.l1, self.l2 = nn.Linear(2, 16), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.l1(x))
        if self.training:  # a random mask
            return self.l2(h * torch.bernoulli(torch.full_like(h, 1 - self.p)))
        return self.l2(h * (1 - self.p))  # scaled at test time


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HandBatchNorm(nn.Module):
    """Batch norm written by hand: running statistics updated in place in forward, which the output of train mode
    does not depend on, and used in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(2, 8), nn.Linear(8, 2)
        self.gamma, self.beta = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.register_buffer("running_mean", torch.zeros(8))
        self.register_buffer("running_var", torch.ones(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.l1(x)
        if self.training:
            mean, var = h.mean(0), h.var(0)
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * mean)
                self.running_var *= 0.9
                self.running_var += 0.1 * var
        else:
            mean, var = self.running_mean, self.running_var
        return self.l2(torch.relu(self.gamma * (h - mean) / torch.sqrt(var + 1e-5) + self.beta))


class Statistics(nn.Module):
    """Keeps activation statistics in forward (Python floats, a list): nothing of it reaches the output."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(2, 6), nn.Linear(6, 2)
        self.acts: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.l1(x))
        self.acts.append(h.std().item())
        self.acts.append(float((h > 0).float().mean()))
        _ = torch.sort(h, dim=1)  # outside the whitelist, but the output does not depend on it
        return self.l2(h)


class Images(nn.Module):
    """Flattens its input with x.view(x.size(0), -1)."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(12, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.relu(self.l1(x.view(x.size(0), -1))))


def sequential() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 2))


MODELS = {
    "sequential": (sequential, 2, 3),
    "functional": (Functional, 2, 3),
    "matmul_transposed": (MatmulTransposed, 2, 2),
    "matmul_in_out": (MatmulInOut, 2, 2),
    "addmm": (Addmm, 2, 2),
    "module_list": (Loop, 2, 5),
    "in_place": (InPlace, 2, 3),
    "hand_dropout": (HandDropout, 4, 3),
    "paper_dropout": (PaperDropout, 2, 2),
    "batch_norm": (WithBatchNorm, 2, 2),
    "hand_batch_norm": (HandBatchNorm, 2, 2),
    "statistics": (Statistics, 2, 2),
    "images": (Images, 12, 2),
}


def original_and_rebuilt(name: str, seed: int = 0) -> tuple[nn.Module, GraphModel]:
    make, width, _ = MODELS[name]
    torch.manual_seed(seed)
    model = make()
    original = copy.deepcopy(model)  # capturing runs forward passes (batch norm updates its statistics)
    return original, rebuilt(model, width, name)


def inputs(name: str, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    width = MODELS[name][1]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, width, generator=g)
    n_classes = 3 if name in ("hand_dropout", "images") else 2
    return x, torch.randint(0, n_classes, (n,), generator=g)


@pytest.mark.parametrize("name", MODELS)
def test_the_rebuilt_model_computes_the_same_outputs(name):
    original, model = original_and_rebuilt(name)
    x, _ = inputs(name)
    for training in (False, True):
        original.train(training)
        model.train(training)
        torch.manual_seed(5)  # the same random masks, drawn in the same order
        expected = original(x)
        torch.manual_seed(5)
        got = model(x)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=f"{name}, training={training}")
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in original.named_parameters()]
    assert [n for n, _ in model.named_buffers()] == [n for n, _ in original.named_buffers()]


@pytest.mark.parametrize("name", MODELS)
def test_the_rebuilt_model_trains_the_same_way(name):
    original, model = original_and_rebuilt(name)
    x, y = inputs(name)
    for m in (original, model):
        m.train()
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (original, model)]
    for step in range(5):
        losses = []
        for m, opt in zip((original, model), opts, strict=True):
            torch.manual_seed(100 + step)
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6, msg=f"{name}, step {step}")
    for (n, p), (_, q) in zip(original.state_dict().items(), model.state_dict().items(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=f"{name}: {n}")


@pytest.mark.parametrize("name", MODELS)
def test_every_matrix_product_with_a_weight_is_a_linear_unit_in_execution_order(name):
    original, model = original_and_rebuilt(name)
    layers = MODELS[name][2]
    x, _ = inputs(name)
    model.eval()
    with torch.no_grad(), traced(model) as trace:
        out = model(x)
    assert len(trace.units) == len(model.units()) == layers
    assert trace.outputs[-1].shape == out.shape and torch.equal(trace.outputs[-1], out)
    for k, unit in enumerate(trace.units):  # each unit's output is its input through its weight (out, in) and bias
        w, b = model.weight(unit), model.bias(unit)
        assert w.shape == (trace.outputs[k].shape[1], trace.inputs[k].shape[1])
        torch.testing.assert_close(trace.outputs[k], F.linear(trace.inputs[k], w, b))
    if name == "matmul_in_out":
        assert [u.transposed for u in model.units()] == [True, True]
        assert [u.bias for u in model.units()] == ["b1", "b2"]
    if name == "addmm":
        assert [(u.weight, u.bias, u.transposed) for u in model.units()] == [("W1", "b1", False), ("W2", "b2", True)]


def test_units_come_in_execution_order_when_the_output_layer_is_registered_first():
    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(8, 2)
            self.hidden = nn.Linear(5, 8)
            self.first = nn.Linear(2, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.hidden(torch.relu(self.first(x)))))

    model = rebuilt(HeadFirst(), 2)
    assert [n for n, _ in model.named_parameters()][:2] == ["head.weight", "head.bias"]  # the student's order
    for training in (True, False):
        assert [u.weight for u in model.units(training)] == ["first.weight", "hidden.weight", "head.weight"]
    assert [u.scope for u in model.units()] == ["first (Linear)", "hidden (Linear)", "head (Linear)"]


def test_hand_written_dropout_draws_its_mask_only_in_train_mode():
    _, model = original_and_rebuilt("hand_dropout")
    assert model.ops(training=True).count("torch.rand_like") == 2
    assert "torch.rand_like" not in model.ops(training=False)
    x, _ = inputs("hand_dropout")
    model.train()
    assert not torch.equal(model(x), model(x))  # a fresh mask every pass
    model.eval()
    assert torch.equal(model(x), model(x))
    assert model.graph.repeats_random is False


def test_a_training_branch_gives_two_programs():
    _, model = original_and_rebuilt("paper_dropout")
    assert "torch.bernoulli" in model.ops(training=True) and "torch.bernoulli" not in model.ops(training=False)
    assert model.ops(training=False) == ["linear", "torch.relu", "Tensor.mul", "linear"]  # h * (1 - p)


def test_statistics_kept_in_forward_are_dropped():
    torch.manual_seed(0)
    student = Statistics()
    graph, state = wire(student, 2)
    assert student.acts  # the student's forward ran, and kept its statistics
    for mode in ("train", "eval"):
        ops = [node["op"] for node in graph[mode]["nodes"]]
        assert ops == ["F.linear", "torch.relu", "F.linear"], ops
    assert sorted(state) == ["l1.bias", "l1.weight", "l2.bias", "l2.weight"]


def test_a_view_on_the_batch_size_gets_the_batch_symbol():
    graph, _ = wire(Images(), 12)
    view = graph["train"]["nodes"][0]
    assert view["op"] == "Tensor.view" and view["args"] == [{"v": 0}, {"b": 1}, -1]
    _, model = original_and_rebuilt("images")
    for n in (1, 5, 300):
        assert model(torch.randn(n, 12)).shape == (n, 3)
        assert model(torch.randn(n, 3, 4)).shape == (n, 3)  # the batch's other dimensions are flattened


def test_a_constant_used_only_for_statistics_is_not_sent():
    class Tracker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = nn.Linear(2, 2)
            self.reference = torch.ones(2)  # a plain tensor attribute, neither parameter nor buffer
            self.scale = torch.full((2,), 2.0)
            self.seen: list[float] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.l1(x)
            self.seen.append((h - self.reference).abs().mean().item())
            return h * self.scale

    student = Tracker()
    graph, state = wire(student, 2)
    assert student.seen  # the statistics were computed, with the reference
    constants = [s["name"] for s in graph["state"] if s["kind"] == "constant"]
    assert len(constants) == 1 and sorted(state) == sorted(["l1.weight", "l1.bias", *constants])
    assert torch.equal(state[constants[0]], torch.full((2,), 2.0))


def test_the_captured_state_is_the_one_before_any_forward_pass():
    torch.manual_seed(0)
    student = WithBatchNorm()
    before = copy.deepcopy(student.state_dict())
    _, state = wire(student, 2)
    assert not torch.equal(student.net[1].running_mean, before["net.1.running_mean"])  # the capture's passes
    for name, value in before.items():
        assert torch.equal(state[name], value), name
