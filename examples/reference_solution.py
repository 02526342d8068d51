"""Reference solution of the initialization & regularization lab (full marks).

Every function below is part of the submission contract (docs/students.md): the grader imports this file in a
sandbox, builds the models, trains them on its own data and measures what they do.
"""

import math

import torch
from torch import nn

# Part 1: the three sigmas of N(0, sigma) found with the sweep (check them in the report's sweep plot).
SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def _init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)


def circle_model(sigma: float | None = None) -> nn.Module:
    """Part 1: 2 -> 6 -> 3 -> 2 with ReLU. N(0, sigma) weights and zero biases, or (sigma=None) He init for the
    hidden layers and a small output layer, so that the logits start near 0 and the loss near ln 2."""
    model = nn.Sequential(
        nn.Linear(2, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
        nn.ReLU(),
        nn.Linear(3, 2),
    )
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for layer in linears:
        std = sigma if sigma is not None else math.sqrt(2.0 / layer.in_features)
        _init_linear(layer, std)
    if sigma is None:
        with torch.no_grad():
            linears[-1].weight *= 0.1  # output layer: not overconfident at init
    return model


def deep_model(init: str) -> nn.Module:
    """Part 2: 20 Linear layers (2 -> 100 x 19 -> 2) with ReLU, zero biases, and the weights drawn from
    N(0, 1) ("normal"), Glorot ("xavier": var = 2 / (fan_in + fan_out)) or He ("kaiming": var = 2 / fan_in)."""
    widths = [2] + [100] * 19 + [2]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layer = nn.Linear(fan_in, fan_out)
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = math.sqrt(2.0 / (fan_in + fan_out))
        elif init == "kaiming":
            std = math.sqrt(2.0 / fan_in)
        else:
            raise ValueError(f"unknown init {init!r}")
        _init_linear(layer, std)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the output layer


def mnist_model(dropout: bool) -> nn.Module:
    """Part 3: 784 -> 800 -> 800 -> 10 with ReLU; with dropout, 20% on the input and 50% after each hidden
    layer. N(0, 0.1) weights and zero biases, as in the dropout paper."""

    def drop(p: float) -> list[nn.Module]:
        return [nn.Dropout(p)] if dropout else []

    model = nn.Sequential(
        *drop(0.2),
        nn.Linear(784, 800),
        nn.ReLU(),
        *drop(0.5),
        nn.Linear(800, 800),
        nn.ReLU(),
        *drop(0.5),
        nn.Linear(800, 10),
    )
    for m in model:
        if isinstance(m, nn.Linear):
            _init_linear(m, 0.1)
    return model


@torch.no_grad()
def fold_batchnorm(model: nn.Sequential) -> nn.Module:
    """makemore E02: fold each BatchNorm1d (eval mode: running statistics) into the Linear layer before it.

    BN(Wx + b) = gamma * (Wx + b - mean) / sqrt(var + eps) + beta = (s * W) x + s * (b - mean) + beta,
    with s = gamma / sqrt(var + eps) per output unit (gamma = 1, beta = 0 when the BatchNorm is not affine).
    """
    layers = list(model)
    folded: list[nn.Module] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
            scale = torch.rsqrt(nxt.running_var + nxt.eps)
            shift = -nxt.running_mean * scale
            if nxt.affine:
                scale, shift = scale * nxt.weight, shift * nxt.weight + nxt.bias
            bias = layer.bias if layer.bias is not None else torch.zeros_like(nxt.running_mean)
            fused = nn.Linear(layer.in_features, layer.out_features)
            fused.weight.copy_(layer.weight * scale[:, None])
            fused.bias.copy_(bias * scale + shift)
            folded.append(fused)
            i += 2
        else:
            folded.append(layer)
            i += 1
    return nn.Sequential(*folded).eval()


def tanh_model(batchnorm: bool = False) -> nn.Module:
    """makemore: 784 -> 100 -> 100 -> 100 -> 100 -> 100 -> 10 with tanh after each hidden layer, the hidden
    weights with Kaiming's gain for tanh (std (5/3) / sqrt(fan_in)) and the output layer scaled down. With
    batchnorm, each hidden layer is Linear(bias=False) -> BatchNorm1d -> Tanh: a bias before the batch norm would be
    subtracted with the batch mean, so it would never learn."""
    widths = [784] + [100] * 5
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layer = nn.Linear(fan_in, fan_out, bias=not batchnorm)
        nn.init.kaiming_normal_(layer.weight, nonlinearity="tanh")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
        norm = [nn.BatchNorm1d(fan_out)] if batchnorm else []
        layers += [layer, *norm, nn.Tanh()]
    head = nn.Linear(100, 10)
    with torch.no_grad():
        head.weight *= 0.1  # the output layer starts small (makemore)
    return nn.Sequential(*layers, head)
