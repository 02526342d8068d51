"""Style: hand-written inverted dropout, with the mask drawn a different way at each place: timm's drop_path
idiom `x.new_empty(x.shape).bernoulli_(1 - p)` on the input, `torch.rand(x.shape) < 1 - p` with torch.where after
the first hidden layer, and masked_fill after the second; all rescale the kept units by 1 / (1 - p) in training
only. Layers as attributes; the circle model uses x.relu() and the deep net a ModuleList with F.relu."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def init_(layer, std):
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)
    return layer


class Circle(nn.Module):
    def __init__(self, sigma=None):
        super().__init__()
        if sigma is None:  # He, and a tiny last layer
            self.a = init_(nn.Linear(2, 6), math.sqrt(2 / 2))
            self.b = init_(nn.Linear(6, 3), math.sqrt(2 / 6))
            self.c = init_(nn.Linear(3, 2), 0.01 * math.sqrt(2 / 3))
        else:
            self.a = init_(nn.Linear(2, 6), sigma)
            self.b = init_(nn.Linear(6, 3), sigma)
            self.c = init_(nn.Linear(3, 2), sigma)

    def forward(self, x):
        return self.c(self.b(self.a(x).relu()).relu())


class Deep(nn.Module):
    def __init__(self, init):
        super().__init__()
        dims = [2] + [100] * 19 + [2]
        self.layers = nn.ModuleList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            if init == "normal":
                std = 1.0
            elif init == "xavier":
                std = (2 / (d_in + d_out)) ** 0.5
            elif init == "kaiming":
                std = (2 / d_in) ** 0.5
            else:
                raise ValueError(init)
            self.layers.append(init_(nn.Linear(d_in, d_out), std))

    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = F.relu(layer(x))
        return last(x)


class Mnist(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.dropout = dropout
        self.fc1 = init_(nn.Linear(784, 800), 0.1)
        self.fc2 = init_(nn.Linear(800, 800), 0.1)
        self.fc3 = init_(nn.Linear(800, 10), 0.1)

    def forward(self, x):
        drop = self.dropout and self.training
        if drop:
            p = 0.2
            keep = x.new_empty(x.shape).bernoulli_(1 - p)
            x = x * keep / (1 - p)
        h = F.relu(self.fc1(x))
        if drop:
            p = 0.5
            keep = torch.rand(h.shape) < 1 - p
            h = torch.where(keep, h / (1 - p), torch.zeros_like(h))
        h = F.relu(self.fc2(h))
        if drop:
            p = 0.5
            dropped = torch.rand_like(h) < p
            h = h.masked_fill(dropped, 0.0) / (1 - p)
        return self.fc3(h)


def circle_model(sigma=None):
    return Circle(sigma)


def deep_model(init):
    return Deep(init)


def mnist_model(dropout):
    return Mnist(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    result = []
    for layer in model:
        if isinstance(layer, nn.BatchNorm1d) and result and isinstance(result[-1], nn.Linear):
            lin = result.pop()
            inv_std = (layer.running_var + layer.eps).rsqrt()
            gamma = layer.weight if layer.weight is not None else 1.0
            beta = layer.bias if layer.bias is not None else 0.0
            bias = lin.bias if lin.bias is not None else 0.0
            fused = nn.Linear(lin.in_features, lin.out_features)
            fused.weight.copy_(lin.weight * (gamma * inv_std)[:, None])
            fused.bias.copy_((bias - layer.running_mean) * gamma * inv_std + beta)
            result.append(fused)
        else:
            result.append(layer)
    return nn.Sequential(*result)


class TanhNet(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        self.l1 = nn.Linear(784, 100, bias=not batchnorm)
        self.l2 = nn.Linear(100, 100, bias=not batchnorm)
        self.l3 = nn.Linear(100, 100, bias=not batchnorm)
        self.l4 = nn.Linear(100, 100, bias=not batchnorm)
        self.l5 = nn.Linear(100, 100, bias=not batchnorm)
        self.out = init_(nn.Linear(100, 10), 0.01)
        for lin in (self.l1, self.l2, self.l3, self.l4, self.l5):
            nn.init.kaiming_normal_(lin.weight, nonlinearity="tanh")
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        self.batchnorm = batchnorm
        if batchnorm:
            self.n1, self.n2, self.n3, self.n4, self.n5 = (nn.BatchNorm1d(100, momentum=0.01) for _ in range(5))

    def forward(self, x):
        for k in range(1, 6):
            x = getattr(self, f"l{k}")(x)
            if self.batchnorm:
                x = getattr(self, f"n{k}")(x)
            x = F.tanh(x)
        return self.out(x)


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
