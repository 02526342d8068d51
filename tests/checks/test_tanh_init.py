"""makemore's tanh network: Kaiming's gain 5/3, saturation at init and no bias before BatchNorm.

The models are written the way students write them, captured and rebuilt in this process (as the grading does),
run by the grader's own task (with a few training steps only) and scored by the check."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from grader.assignment import load_assignment
from grader.checks import tanh_init
from grader.data.mnist import load_mnist
from grader.sandbox import SandboxReply
from grader.session import Run
from grader.tasks.lab import tanh_stats
from grader.tasks.local import captured_models

A = load_assignment()
A = A.model_copy(update={"tanh": A.tanh.model_copy(update={"steps": 4})})  # the diagnostics after 4 steps
DATA = load_mnist(None, 600, 10)
WIDTHS = [784, 100, 100, 100, 100, 100]


def tanh_mlp(batchnorm=False, gain=5 / 3, init="normal", bias=None, norm=True, head=0.1):
    """784 -> 100 x 5 -> 10 with tanh; `init`: normal or uniform with `gain`, "randn" (N(0, 1)), "default"."""
    torch.manual_seed(0)
    layers = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:], strict=True):
        layer = nn.Linear(fan_in, fan_out, bias=not batchnorm if bias is None else bias)
        if init == "normal":
            nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
        elif init == "uniform":
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="tanh") if gain == 5 / 3 else None
        elif init == "randn":
            nn.init.normal_(layer.weight)
        if layer.bias is not None and init != "default":
            nn.init.zeros_(layer.bias)
        layers += [layer, *([nn.BatchNorm1d(fan_out)] if batchnorm and norm else []), nn.Tanh()]
    out = nn.Linear(100, 10)
    with torch.no_grad():
        out.weight *= head
    return nn.Sequential(*layers, out)


def graded(plain: nn.Module, bn: nn.Module):
    models, params, inputs = captured_models({"tanh.plain": (plain, 784), "tanh.bn": (bn, 784)})
    session = SimpleNamespace(assignment=A, mnist_data=DATA)
    own, data, keys = tanh_init._tanh(session)
    params |= own
    meta, tensors = tanh_stats(models, params, inputs | data)
    reply = SandboxReply(ok=True, meta=meta, tensors={k: v.numpy() for k, v in tensors.items()}, failure=None,
                         log_tail="", wall_seconds=0)  # fmt: skip
    run = Run("tanh", "tanh_stats", params, reply)
    state = {k: {n: inputs[f"{k}/{n}"].numpy() for n in (x.split("/", 1)[1] for x in inputs if x.startswith(k + "/"))}
             for k in keys}  # fmt: skip
    session.built = SimpleNamespace(graphs=params["graphs"], tensors=state)
    session.run = lambda name: run if name == "tanh" else None
    result = tanh_init.check(session, A)
    return result, {i.id: i for i in result.items}


def test_the_reference_passes_with_normal_and_uniform_kaiming():
    for init in ("normal", "uniform"):
        result, items = graded(tanh_mlp(init=init), tanh_mlp(True, init=init))
        assert result.score == result.max_score == 10, result.message
    gains = [x["gain"] for x in result.metrics["gain"]["layers"]]
    assert all(abs(g / (5 / 3) - 1) < 0.03 for g in gains), gains
    layers = result.metrics["plain"]["init"]["layers"]
    assert len(layers) == 5 and max(x["saturated_percent"] for x in layers[1:]) < 15
    assert all(x["batchnorm"] and x["bias"] is None and x["shift_ratio"] < 1e-4 for x in result.metrics["batchnorm"])
    assert tanh_init.facts(result) and any(s.name.startswith("bn.update_ratio.") for s in result.series)


@pytest.mark.parametrize(
    ("gain", "init", "lost", "words"),
    [
        (1.0, "normal", {"gain"}, "Kaiming without the tanh gain"),
        (math.sqrt(2), "normal", {"gain"}, "the ReLU gain"),
        (1.0, "randn", {"gain", "saturation"}, "N(0, 1) weights"),
        (0.5, "normal", {"gain", "saturation"}, "fade with depth"),
        (1.0, "default", {"gain", "saturation"}, "PyTorch's default"),
    ],
)
def test_wrong_gains_lose_their_items(gain, init, lost, words):
    result, items = graded(tanh_mlp(gain=gain, init=init), tanh_mlp(True))
    assert {k for k, i in items.items() if not i.passed} == lost, result.message
    assert words in result.message
    if init == "randn":
        assert "saturated" in items["saturation"].detail


def test_a_bias_before_batchnorm_fails_and_gets_no_gradient():
    result, items = graded(tanh_mlp(), tanh_mlp(True, bias=True))
    assert [k for k, i in items.items() if not i.passed] == ["bias_before_batchnorm"], result.message
    assert "adds a bias before its batch norm" in result.message
    layers = result.metrics["batchnorm"]
    assert all(x["batchnorm"] and x["bias"] and x["bias_grad_max"] < 1e-6 for x in layers), layers


@pytest.mark.parametrize("head", [0.1, 0.0])  # a zero output layer: no gradient reaches the hidden layers at init
def test_no_batchnorm_fails(head):
    result, items = graded(tanh_mlp(head=head), tanh_mlp(True, norm=False, head=head))
    assert [k for k, i in items.items() if not i.passed] == ["bias_before_batchnorm"], result.message
    assert "no batch norm" in result.message
    assert all(not x["batchnorm"] and x["shift_ratio"] > 1e-2 for x in result.metrics["batchnorm"])


def test_batchnorm_on_some_layers_only_fails():
    bn = tanh_mlp(True)
    bn[4] = nn.Identity()  # the second hidden layer's BatchNorm1d
    result, items = graded(tanh_mlp(), bn)
    assert [k for k, i in items.items() if not i.passed] == ["bias_before_batchnorm"], result.message
    assert "no batch norm after hidden layer(s) 2;" in result.message
