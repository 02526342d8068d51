"""The analytic side of part 2, tested without any student code: known inits are named correctly and the
expectation matches real deep ReLU nets across seeds."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from grader.assignment import load_assignment
from grader.checks.activation_stats import CANDIDATES, analyse, identify, judge
from grader.sandbox import SandboxReply
from grader.session import Run
from grader.tasks.lab import layer_stats

WIDTHS = [2] + [100] * 19 + [2]


def net(std_fn, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, o in zip(WIDTHS[:-1], WIDTHS[1:], strict=True):
        lin = nn.Linear(i, o)
        nn.init.normal_(lin.weight, 0, std_fn(i, o))
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def reply_for(model: nn.Sequential, init: str, x: torch.Tensor, g: torch.Tensor) -> Run:
    """What the sandbox child's deep_stats task returns, computed here on a model the test built."""
    tensors: dict[str, np.ndarray] = {}
    h = x
    outs = []
    for layer in model:
        h = layer(h)
        if isinstance(layer, nn.Linear):
            h.retain_grad()
            outs.append((layer, h))
    h.backward(g)
    tensors[f"{init}.stats"] = torch.stack([layer_stats(z, z.grad) for _, z in outs]).numpy()
    tensors[f"{init}.logits"] = outs[-1][1].detach().numpy()
    for k, (layer, _) in enumerate(outs):
        tensors |= {f"{init}.w{k}": layer.weight.detach().numpy(), f"{init}.b{k}": layer.bias.detach().numpy()}
    reply = SandboxReply(ok=True, meta={}, tensors=tensors, failure=None, log_tail="", wall_seconds=0.0)
    return Run("deep", "deep_stats", {}, reply)


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_identify_names_each_known_init(name):
    shapes = [(o, i) for i, o in zip(WIDTHS[:-1], WIDTHS[1:], strict=True)]
    stds = [CANDIDATES[name][1](i, o) for o, i in shapes]
    found, distance = identify(shapes, stds)
    assert distance < 1e-9
    # Glorot and LeCun agree on square layers but not on the 2 -> 100 and 100 -> 2 ones
    assert found == name


@pytest.mark.parametrize(
    "init,per_layer", [("normal", math.sqrt(100 / 2)), ("xavier", math.sqrt(0.5)), ("kaiming", 1.0)]
)
def test_expected_growth_per_layer(init, per_layer):
    x, g = torch.randn(512, 2), torch.randn(512, 2)
    stats = analyse(reply_for(net(CANDIDATES[init][1], 0), init, x, g), init, x, g)
    exp = stats["expected_rms"]
    assert all(math.isclose(exp[k + 1] / exp[k], per_layer, rel_tol=1e-9) for k in range(1, 18))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming"])
def test_correct_inits_pass_on_many_seeds(init, seed):
    a = load_assignment()
    x = torch.randn(2048, 2, generator=torch.Generator().manual_seed(100 + seed))
    g = torch.randn(2048, 2, generator=torch.Generator().manual_seed(200 + seed))
    stats = analyse(reply_for(net(CANDIDATES[init][1], seed), init, x, g), init, x.double(), g.double())
    assert judge(stats, a) == []
    assert stats["identified_init"] == init


@pytest.mark.parametrize("mistake", ["lecun", "kaiming_variance_as_std", "kaiming_fan_out", "torch_default"])
def test_he_mistakes_are_caught_and_named(mistake):
    a = load_assignment()
    x, g = torch.randn(2048, 2), torch.randn(2048, 2)
    stats = analyse(reply_for(net(CANDIDATES[mistake][1], 0), "kaiming", x, g), "kaiming", x.double(), g.double())
    assert judge(stats, a), f"{mistake} passed as He"
    assert stats["identified_init"] == mistake


@pytest.mark.parametrize(
    ("mistake", "share"),
    [("kaiming_fan_out", 0.5), ("lecun", 0.0), ("kaiming_variance_as_std", 0.0), ("torch_default", 0.0),
     ("kaiming", 1.0)],
)  # fmt: skip
def test_partial_credit_only_where_the_middle_layers_are_right(mistake, share):
    """He with fan_out differs from He only in the first and output layers (fan_in = fan_out = 100 between them):
    half the points; a mistake that changes how every layer scales earns nothing."""
    from grader.checks.activation_stats import credit

    a = load_assignment()
    assert a.deep.edge_credit == 0.5
    x, g = torch.randn(2048, 2), torch.randn(2048, 2)
    stats = analyse(reply_for(net(CANDIDATES[mistake][1], 0), "kaiming", x, g), "kaiming", x.double(), g.double())
    assert credit(stats, a) == share
