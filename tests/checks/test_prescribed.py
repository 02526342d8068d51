"""The architecture reading: models written the way students write them, captured, rebuilt and measured."""

import json

import pytest
import torch
from torch import nn

from grader.checks.prescribed import init_stats, scaled_copy, std_matches, structure
from grader.graph.rebuild import GraphModel
from grader.graph.schema import validate_graph
from grader.sandbox.inside.capture import capture


def rebuilt(model: nn.Module, width: int) -> GraphModel:
    graph, tensors = capture(model, width, "model")
    return GraphModel(validate_graph(json.loads(json.dumps(graph))), tensors)


def mlp(*tail: nn.Module, between: type[nn.Module] = nn.ReLU, drop: float = 0.0) -> nn.Sequential:
    layers = [nn.Linear(784, 800), between(), *([nn.Dropout(drop)] if drop else []), nn.Linear(800, 10), *tail]
    return nn.Sequential(*layers)


class PaperDropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (torch.rand_like(x) >= self.p) if self.training else x * (1 - self.p)


class HeadFirst(nn.Module):
    """The output layer registered first: layers are read in the order forward runs them."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(800, 10)
        self.body = nn.Linear(784, 800)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


@pytest.mark.parametrize(
    ("model", "fault"),
    [
        (mlp(), None),
        (mlp(drop=0.5), None),
        (nn.Sequential(nn.Linear(784, 800), nn.ReLU(), PaperDropout(0.5), nn.Linear(800, 10)), None),
        (HeadFirst(), None),
        (mlp(nn.Softmax(dim=1)), "softmax probabilities instead of logits"),
        (mlp(nn.LogSoftmax(dim=1)), "softmax probabilities instead of logits"),
        (mlp(nn.ReLU()), "ReLU to the logits"),
        (mlp(nn.Dropout(0.5)), "never on the logits"),
        (mlp(between=nn.Tanh), "it applies tanh"),
        (mlp(between=nn.Identity), "it applies nothing"),
        (mlp(between=nn.Sigmoid), "a sigmoid"),
    ],
)
def test_structure_names_the_fault(model, fault):
    s = structure(rebuilt(model, 784), 784, "mnist_model(True)")
    assert s.shapes == [(800, 784), (10, 800)]
    if fault is None:
        assert s.faults == []
    else:
        assert len(s.faults) == 1 and fault in s.faults[0], s.faults


def test_a_buffer_as_weight_is_not_trainable():
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 2))
    del model[0].weight
    model[0].register_buffer("weight", torch.zeros(6, 2))
    s = structure(rebuilt(model, 2), 2, "circle_model(None)")
    assert any("is a buffer, not an nn.Parameter" in f for f in s.faults)


def test_init_stats_and_std_tolerance():
    torch.manual_seed(0)
    models = []
    for _ in range(5):
        m = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
        for layer in m:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0, 0.1)
                nn.init.zeros_(layer.bias)
        models.append(rebuilt(m, 2))
    stats = init_stats(models)
    assert stats.n == 5 * 36 and stats.bias_max == 0
    assert std_matches(stats.std, 0.1, stats.n)
    assert not std_matches(stats.std, 0.1**0.5, stats.n), "sigma used as the variance must not match"
    assert not std_matches(stats.std, 0.2, stats.n)


def test_scaled_copy():
    x = torch.randn(10, 5)
    assert scaled_copy(x, x) and scaled_copy(0.5 * x, x)
    assert not scaled_copy(2 * x, x) and not scaled_copy(x.relu(), x) and not scaled_copy(-x, x)
