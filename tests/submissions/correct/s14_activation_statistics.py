"""Style: the models record activation statistics in forward, as the lab's Part 2 and makemore do:
the deep net appends (mean |a|, std |a|) of every layer's output with .item() to self.stats, the circle net keeps
self.last_act, the MNIST net keeps its hidden activations in a dict; the MNIST net flattens its input with
x.view(x.size(0), -1) before the first layer. fold_batchnorm uses torch.rsqrt on a zip of adjacent layers."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


class CircleNet(nn.Module):
    def __init__(self, sigma=None):
        super().__init__()
        self.fc1 = nn.Linear(2, 6)
        self.fc2 = nn.Linear(6, 3)
        self.fc3 = nn.Linear(3, 2)
        self.last_act = None
        for fc in (self.fc1, self.fc2, self.fc3):
            std = sigma if sigma is not None else math.sqrt(2 / fc.in_features)
            nn.init.normal_(fc.weight, 0, std)
            nn.init.zeros_(fc.bias)
        if sigma is None:
            with torch.no_grad():
                self.fc3.weight.mul_(0.01)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        self.last_act = x.detach()
        return self.fc3(x)


class DeepNet(nn.Module):
    def __init__(self, init, n_layers=20, width=100):
        super().__init__()
        sizes = [2] + [width] * (n_layers - 1) + [2]
        self.layers = nn.ModuleList([nn.Linear(sizes[i], sizes[i + 1]) for i in range(n_layers)])
        self.stats = []  # one list of (mean |a|, std |a|) per forward pass
        for layer in self.layers:
            if init == "normal":
                std = 1.0
            elif init == "xavier":
                std = math.sqrt(2 / (layer.in_features + layer.out_features))
            elif init == "kaiming":
                std = math.sqrt(2 / layer.in_features)
            else:
                raise ValueError(init)
            nn.init.normal_(layer.weight, 0, std)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        pass_stats = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
            pass_stats.append((x.abs().mean().item(), x.abs().std().item()))
        self.stats.append(pass_stats)
        return x


class MnistNet(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.dropout = dropout
        self.fc1 = nn.Linear(784, 800)
        self.fc2 = nn.Linear(800, 800)
        self.fc3 = nn.Linear(800, 10)
        self.activations = {}
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.normal_(fc.weight, 0, 0.1)
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        if self.dropout:
            x = F.dropout(x, 0.2, self.training)
        h1 = F.relu(self.fc1(x))
        self.activations["h1"] = h1
        if self.dropout:
            h1 = F.dropout(h1, 0.5, self.training)
        h2 = F.relu(self.fc2(h1))
        self.activations["h2"] = h2
        if self.dropout:
            h2 = F.dropout(h2, 0.5, self.training)
        return self.fc3(h2)


def circle_model(sigma=None):
    return CircleNet(sigma)


def deep_model(init):
    return DeepNet(init)


def mnist_model(dropout):
    return MnistNet(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    mods = list(model) + [None]
    out = []
    for cur, nxt in zip(mods[:-1], mods[1:]):
        if isinstance(cur, nn.BatchNorm1d):
            continue
        if isinstance(cur, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
            k = torch.rsqrt(nxt.running_var + nxt.eps)
            if nxt.affine:
                k = k * nxt.weight
            new_w = cur.weight * k[:, None]
            new_b = -nxt.running_mean * k
            if cur.bias is not None:
                new_b = new_b + cur.bias * k
            if nxt.affine:
                new_b = new_b + nxt.bias
            lin = nn.Linear(cur.in_features, cur.out_features)
            lin.weight.data = new_w
            lin.bias.data = new_b
            out.append(lin)
        else:
            out.append(cur)
    return nn.Sequential(*out)


class BatchNorm1d(nn.Module):
    """makemore's BatchNorm1d: batch statistics in training, running ones in eval mode."""

    def __init__(self, dim, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x):
        if self.training:
            xmean = x.mean(0, keepdim=True)
            xvar = x.var(0, keepdim=True)
        else:
            xmean, xvar = self.running_mean, self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
        out = self.gamma * xhat + self.beta
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return out


class TanhNet(nn.Module):
    """Keeps the saturated share of every tanh layer (|t| > 0.97) in self.saturation, as makemore plots it."""

    def __init__(self, batchnorm):
        super().__init__()
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for fan_in in (784, 100, 100, 100, 100):
            lin = nn.Linear(fan_in, 100, bias=not batchnorm)
            with torch.no_grad():
                lin.weight.normal_(0.0, 1.0).mul_(5 / 3 / fan_in**0.5)
                if lin.bias is not None:
                    lin.bias.zero_()
            self.linears.append(lin)
            self.norms.append(BatchNorm1d(100) if batchnorm else nn.Identity())
        self.out = nn.Linear(100, 10)
        with torch.no_grad():
            self.out.weight.mul_(0.1)
        self.saturation = []

    def forward(self, x):
        self.saturation = []
        for lin, norm in zip(self.linears, self.norms):
            x = torch.tanh(norm(lin(x)))
            self.saturation.append((x.abs() > 0.97).float().mean().item())
        return self.out(x)


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
