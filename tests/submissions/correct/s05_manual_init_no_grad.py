"""Style: manual init formulas instead of torch.nn.init: `weight.data = torch.randn(...) * std`, in-place
.normal_() / .zero_() under torch.no_grad(), and .copy_() of a precomputed tensor; the Glorot/He stds come
from a small formula table. Recommended circle init: He, output layer scaled by 0.01. fold_batchnorm does the
folding in float64 and builds the new layers with .copy_()."""

import math

import torch
from torch import nn

SIGMAS = {
    "small": 0.1,  # loss stays near ln 2 for a few hundred steps, then reaches ~100% accuracy
    "good": 1.0,
    "big": 4.5,  # huge loss at init, converges to a worse boundary
}

STD = {
    "normal": lambda fan_in, fan_out: 1.0,
    "xavier": lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out)),
    "kaiming": lambda fan_in, fan_out: math.sqrt(2.0 / fan_in),
}


def circle_model(sigma=None):
    l1, l2, l3 = nn.Linear(2, 6), nn.Linear(6, 3), nn.Linear(3, 2)
    if sigma is not None:
        l1.weight.data = torch.randn(6, 2) * sigma
        l2.weight.data = torch.randn(3, 6) * sigma
        l3.weight.data = torch.randn(2, 3) * sigma
    else:
        l1.weight.data = torch.randn(6, 2) * math.sqrt(2 / 2)
        l2.weight.data = torch.randn(3, 6) * math.sqrt(2 / 6)
        l3.weight.data = torch.randn(2, 3) * math.sqrt(2 / 3) * 0.01
    for layer in (l1, l2, l3):
        layer.bias.data = torch.zeros_like(layer.bias)
    return nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), l3)


def deep_model(init):
    std_of = STD[init]
    widths = [2] + [100] * 19 + [2]
    modules = []
    with torch.no_grad():
        for i in range(20):
            lin = nn.Linear(widths[i], widths[i + 1])
            lin.weight.normal_(mean=0.0, std=std_of(widths[i], widths[i + 1]))
            lin.bias.zero_()
            modules.append(lin)
            if i < 19:
                modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def mnist_model(dropout):
    linears = [nn.Linear(784, 800), nn.Linear(800, 800), nn.Linear(800, 10)]
    with torch.no_grad():
        for lin in linears:
            lin.weight.copy_(0.1 * torch.randn(lin.out_features, lin.in_features))
            lin.bias.copy_(torch.zeros(lin.out_features))
    if dropout:
        return nn.Sequential(
            nn.Dropout(0.2),
            linears[0],
            nn.ReLU(),
            nn.Dropout(0.5),
            linears[1],
            nn.ReLU(),
            nn.Dropout(0.5),
            linears[2],
        )
    return nn.Sequential(linears[0], nn.ReLU(), linears[1], nn.ReLU(), linears[2])


def fold_batchnorm(model):
    layers = list(model)
    new = []
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.BatchNorm1d):
                lin = new.pop()  # the Linear just before it
                W = lin.weight.double()
                b = lin.bias.double() if lin.bias is not None else torch.zeros(lin.out_features, dtype=torch.float64)
                mean, var = layer.running_mean.double(), layer.running_var.double()
                gamma = layer.weight.double() if layer.affine else torch.ones_like(var)
                beta = layer.bias.double() if layer.affine else torch.zeros_like(mean)
                k = gamma / torch.sqrt(var + layer.eps)
                fused = nn.Linear(lin.in_features, lin.out_features)
                fused.weight.copy_((W * k[:, None]).float())
                fused.bias.copy_(((b - mean) * k + beta).float())
                new.append(fused)
            else:
                new.append(layer)
    return nn.Sequential(*new)


def tanh_model(batchnorm=False):
    gain = 5.0 / 3.0  # Kaiming's gain for tanh
    layers = []
    n_in = 784
    with torch.no_grad():
        for _ in range(5):
            lin = nn.Linear(n_in, 100, bias=not batchnorm)
            lin.weight.copy_(torch.randn(100, n_in) * gain / math.sqrt(n_in))
            if lin.bias is not None:
                lin.bias.zero_()
            layers += [lin, nn.BatchNorm1d(100), nn.Tanh()] if batchnorm else [lin, nn.Tanh()]
            n_in = 100
        out = nn.Linear(100, 10)
        out.weight.data = torch.randn(10, 100) * 0.01
        out.bias.zero_()
    return nn.Sequential(*layers, out)
