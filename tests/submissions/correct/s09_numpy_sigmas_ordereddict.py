"""Style: SIGMAS picked from a numpy log-spaced sweep grid (values of type np.float64) with an extra key
("glorot") besides small/good/big; models are nn.Sequential built from an OrderedDict with named layers, and
the recommended circle init is Glorot with a 0.1-scaled output layer. fold_batchnorm deep-copies the model's
Linear layers and gives bias-free ones a new bias Parameter."""

import copy
import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

# the sweep I ran: sigma in np.logspace(-2, 2, 17) (0.01 ... 100), 5 seeds each
SIGMA_GRID = np.logspace(-2, 2, 17)
SIGMAS = {
    "small": SIGMA_GRID[4],  # 0.1: long plateau at ln 2, then fine
    "good": SIGMA_GRID[8],  # 1.0
    "big": SIGMA_GRID[11],  # 5.62: loss at init ~ 10, never fully recovers
    "glorot": np.sqrt(2 / (6 + 3)),  # for comparison, not one of the three
}


def _linear(n_in, n_out, std):
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


def circle_model(sigma=None):
    if sigma is None:
        s1 = math.sqrt(2 / (2 + 6))
        s2 = math.sqrt(2 / (6 + 3))
        s3 = 0.1 * math.sqrt(2 / (3 + 2))
    else:
        s1 = s2 = s3 = float(sigma)
    return nn.Sequential(
        OrderedDict(
            [
                ("fc1", _linear(2, 6, s1)),
                ("relu1", nn.ReLU()),
                ("fc2", _linear(6, 3, s2)),
                ("relu2", nn.ReLU()),
                ("logits", _linear(3, 2, s3)),
            ]
        )
    )


def deep_model(init):
    assert init in ("normal", "xavier", "kaiming")
    dims = [2] + [100] * 19 + [2]
    od = OrderedDict()
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = np.sqrt(2.0 / (a + b))
        else:
            std = np.sqrt(2.0 / a)
        od[f"linear{i}"] = _linear(a, b, float(std))
        if i < len(dims) - 2:
            od[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(od)


def mnist_model(dropout):
    od = OrderedDict()
    if dropout:
        od["drop0"] = nn.Dropout(0.2)
    od["fc1"] = _linear(784, 800, 0.1)
    od["relu1"] = nn.ReLU()
    if dropout:
        od["drop1"] = nn.Dropout(0.5)
    od["fc2"] = _linear(800, 800, 0.1)
    od["relu2"] = nn.ReLU()
    if dropout:
        od["drop2"] = nn.Dropout(0.5)
    od["fc3"] = _linear(800, 10, 0.1)
    return nn.Sequential(od)


def fold_batchnorm(model):
    model = copy.deepcopy(model)
    kept = []
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.BatchNorm1d):
                lin = kept[-1]
                if lin.bias is None:
                    lin.bias = nn.Parameter(torch.zeros(lin.out_features))
                std = torch.sqrt(layer.running_var + layer.eps)
                lin.weight.mul_((1 / std)[:, None])
                lin.bias.sub_(layer.running_mean).div_(std)
                if layer.affine:
                    lin.weight.mul_(layer.weight[:, None])
                    lin.bias.mul_(layer.weight).add_(layer.bias)
            else:
                kept.append(layer)
    return nn.Sequential(*kept)


def tanh_model(batchnorm=False):
    named = OrderedDict()
    n_in = 784
    for k in range(1, 6):
        linear = nn.Linear(n_in, 100, bias=not batchnorm)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="tanh")
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)
        named[f"fc{k}"] = linear
        if batchnorm:
            named[f"bn{k}"] = nn.BatchNorm1d(100)
        named[f"tanh{k}"] = nn.Tanh()
        n_in = 100
    named["out"] = _linear(100, 10, 0.01)
    return nn.Sequential(named)
