"""Style: one nn.Module holding an nn.ModuleList of nn.Linear layers with a loop in forward (torch.relu
between layers, F.dropout with a list of per-layer rates and training=self.training); He init for the
recommended circle model with a 0.01-scaled output layer; fold_batchnorm walks pairs with an index and copies
weights into new layers with .copy_()."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.12, "good": 0.8, "big": 5.0}


class MLP(nn.Module):
    def __init__(self, sizes, drop_rates=None):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        # drop_rates[i] is the dropout applied to the input of layer i
        self.drop_rates = drop_rates or [0.0] * len(self.layers)

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            if self.drop_rates[i] > 0:
                x = F.dropout(x, p=self.drop_rates[i], training=self.training)
            x = layer(x)
            if i != len(self.layers) - 1:
                x = torch.relu(x)
        return x


def init_normal(model, stds):
    with torch.no_grad():
        for layer, std in zip(model.layers, stds):
            layer.weight.normal_(0.0, std)
            layer.bias.zero_()


def circle_model(sigma=None):
    model = MLP([2, 6, 3, 2])
    if sigma is not None:
        init_normal(model, [sigma] * 3)
    else:
        stds = [math.sqrt(2.0 / layer.in_features) for layer in model.layers]
        stds[-1] *= 0.01
        init_normal(model, stds)
    return model


def deep_model(init):
    sizes = [2] + [100] * 19 + [2]
    model = MLP(sizes)
    stds = []
    for layer in model.layers:
        n_in, n_out = layer.in_features, layer.out_features
        stds.append({"normal": 1.0, "xavier": math.sqrt(2.0 / (n_in + n_out)), "kaiming": math.sqrt(2.0 / n_in)}[init])
    init_normal(model, stds)
    return model


def mnist_model(dropout):
    rates = [0.2, 0.5, 0.5] if dropout else [0.0, 0.0, 0.0]
    model = MLP([784, 800, 800, 10], rates)
    init_normal(model, [0.1, 0.1, 0.1])
    return model


def fold_batchnorm(model):
    mods = list(model)
    result = []
    with torch.no_grad():
        idx = 0
        while idx < len(mods):
            m = mods[idx]
            nxt = mods[idx + 1] if idx + 1 < len(mods) else None
            if isinstance(m, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
                s = 1.0 / torch.sqrt(nxt.running_var + nxt.eps)
                if nxt.affine:
                    s = s * nxt.weight
                lin = nn.Linear(m.in_features, m.out_features, bias=True)
                lin.weight.copy_(m.weight * s.view(-1, 1))
                bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
                new_bias = (bias - nxt.running_mean) * s
                if nxt.affine:
                    new_bias = new_bias + nxt.bias
                lin.bias.copy_(new_bias)
                result.append(lin)
                idx += 2
            else:
                result.append(m)
                idx += 1
    return nn.Sequential(*result)


class TanhMLP(nn.Module):
    def __init__(self, sizes, batchnorm):
        super().__init__()
        n = len(sizes) - 1
        # no bias before a BatchNorm1d: its mean subtraction would cancel it
        self.layers = nn.ModuleList(
            [nn.Linear(a, b, bias=not batchnorm or i == n - 1) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
        )
        self.norms = nn.ModuleList([nn.BatchNorm1d(b) for b in sizes[1:-1]]) if batchnorm else None

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i != len(self.layers) - 1:
                if self.norms is not None:
                    x = self.norms[i](x)
                x = torch.tanh(x)
        return x


def tanh_model(batchnorm=False):
    model = TanhMLP([784, 100, 100, 100, 100, 100, 10], batchnorm)
    with torch.no_grad():
        for layer in model.layers[:-1]:
            layer.weight.normal_(0.0, (5 / 3) / math.sqrt(layer.in_features))
            if layer.bias is not None:
                layer.bias.zero_()
        model.layers[-1].weight.mul_(0.1)
    return model
