"""Style: typed helper functions (init_linear, std_for, build_mlp), a small dataclass config, constants in
capitals, and an `if __name__ == "__main__":` block that trains the circle models on a local toy data set and
prints their losses (it must not run on import). fold_batchnorm is split into a typed helper that fuses one
Linear/BatchNorm1d pair."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIGMAS: dict[str, float] = {"small": 0.15, "good": 1.0, "big": 7.0}

DEEP_DEPTH = 20
DEEP_WIDTH = 100


@dataclass(frozen=True)
class DropoutConfig:
    p_input: float = 0.2
    p_hidden: float = 0.5


def std_for(init: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the weight distribution for the given init scheme."""
    if init == "normal":
        return 1.0
    if init == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init == "kaiming":
        return math.sqrt(2.0 / fan_in)
    raise ValueError(f"unknown init scheme: {init!r}")


def init_linear(layer: nn.Linear, std: float) -> nn.Linear:
    with torch.no_grad():
        layer.weight.normal_(0.0, std)
        layer.bias.zero_()
    return layer


def build_mlp(widths: list[int], stds: list[float], dropout: DropoutConfig | None = None) -> nn.Sequential:
    assert len(stds) == len(widths) - 1
    layers: list[nn.Module] = []
    if dropout is not None:
        layers.append(nn.Dropout(dropout.p_input))
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(init_linear(nn.Linear(n_in, n_out), stds[k]))
        if k < len(stds) - 1:
            layers.append(nn.ReLU())
            if dropout is not None:
                layers.append(nn.Dropout(dropout.p_hidden))
    return nn.Sequential(*layers)


def circle_model(sigma: float | None = None) -> nn.Module:
    widths = [2, 6, 3, 2]
    if sigma is None:
        stds = [std_for("kaiming", a, b) for a, b in zip(widths[:-1], widths[1:])]
        stds[-1] *= 0.01
    else:
        stds = [sigma] * 3
    return build_mlp(widths, stds)


def deep_model(init: str) -> nn.Module:
    widths = [2] + [DEEP_WIDTH] * (DEEP_DEPTH - 1) + [2]
    stds = [std_for(init, a, b) for a, b in zip(widths[:-1], widths[1:])]
    return build_mlp(widths, stds)


def mnist_model(dropout: bool) -> nn.Module:
    return build_mlp([784, 800, 800, 10], [0.1, 0.1, 0.1], DropoutConfig() if dropout else None)


def _fuse(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    var, mean = bn.running_var, bn.running_mean
    gamma: Tensor = bn.weight if bn.affine else torch.ones_like(var)
    beta: Tensor = bn.bias if bn.affine else torch.zeros_like(mean)
    bias: Tensor = linear.bias if linear.bias is not None else torch.zeros_like(mean)
    scale = gamma * torch.rsqrt(var + bn.eps)
    fused = nn.Linear(linear.in_features, linear.out_features)
    fused.weight.copy_(linear.weight * scale.unsqueeze(-1))
    fused.bias.copy_((bias - mean) * scale + beta)
    return fused


@torch.no_grad()
def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    layers = list(model)
    folded: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm1d):
            previous = folded.pop()
            assert isinstance(previous, nn.Linear), "BatchNorm1d must follow a Linear layer"
            folded.append(_fuse(previous, layer))
        else:
            folded.append(layer)
    return nn.Sequential(*folded)


def _toy_circle_data(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 4 - 2
    y = (x.norm(dim=1) < 1.2).long()
    x = (x - x.mean(0)) / x.std(0)
    return x, y


def _train(model: nn.Module, x: Tensor, y: Tensor, steps: int = 1000, lr: float = 0.1) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    torch.manual_seed(0)
    x_train, y_train = _toy_circle_data(100)
    for name, sigma in [*SIGMAS.items(), ("recommended", None)]:
        net = circle_model(sigma)
        with torch.no_grad():
            init_loss = F.cross_entropy(net(x_train), y_train).item()
        curve = _train(net, x_train, y_train)
        acc = (net(x_train).argmax(1) == y_train).float().mean().item()
        print(f"{name:12s} sigma={sigma}: loss@init={init_loss:.3f} final={curve[-1]:.4f} acc={acc:.3f}")
    print(f"ln 2 = {math.log(2):.3f}")


TANH_WIDTHS = [784, 100, 100, 100, 100, 100, 10]


def build_tanh_mlp(widths: list[int], batchnorm: bool) -> nn.Sequential:
    """Linear -> (BatchNorm1d) -> Tanh per hidden layer; the gain of tanh (5/3) in the hidden layers' std."""
    gain = nn.init.calculate_gain("tanh")
    layers: list[nn.Module] = []
    for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        if k == len(widths) - 2:
            layers.append(init_linear(nn.Linear(fan_in, fan_out), 0.1 / math.sqrt(fan_in)))
            break
        if batchnorm:
            layer = nn.Linear(fan_in, fan_out, bias=False)
            nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
            layers += [layer, nn.BatchNorm1d(fan_out)]
        else:
            layers.append(init_linear(nn.Linear(fan_in, fan_out), gain / math.sqrt(fan_in)))
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def tanh_model(batchnorm: bool = False) -> nn.Module:
    return build_tanh_mlp(TANH_WIDTHS, batchnorm)
