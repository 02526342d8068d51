"""Style: the output layer is registered BEFORE the hidden layers in __init__ (`self.head` first), so the
parameter order differs from the execution order; the recommended circle init zero-initialises the output
layer (He for the hidden layers): the logits are all 0 at init and the loss is exactly ln 2, while the hidden
layers get gradient from the second step on. fold_batchnorm returns an nn.Sequential built from a list and
handles affine=False with gamma = 1, beta = 0."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


class CircleNet(nn.Module):
    def __init__(self, sigma=None):
        super().__init__()
        self.head = nn.Linear(3, 2)
        self.hidden1 = nn.Linear(2, 6)
        self.hidden2 = nn.Linear(6, 3)
        for layer in (self.hidden1, self.hidden2, self.head):
            std = sigma if sigma is not None else math.sqrt(2.0 / layer.in_features)
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)
        if sigma is None:
            nn.init.zeros_(self.head.weight)  # zero output layer: uniform prediction at init

    def forward(self, x):
        h = F.relu(self.hidden1(x))
        h = F.relu(self.hidden2(h))
        return self.head(h)


class DeepNet(nn.Module):
    def __init__(self, init, width=100, depth=20):
        super().__init__()
        self.head = nn.Linear(width, 2)
        self.stem = nn.Linear(2, width)
        self.body = nn.ModuleList([nn.Linear(width, width) for _ in range(depth - 2)])
        for layer in [self.stem, *self.body, self.head]:
            fan_out, fan_in = layer.weight.shape
            if init == "normal":
                std = 1.0
            elif init == "xavier":
                std = math.sqrt(2.0 / (fan_in + fan_out))
            elif init == "kaiming":
                std = math.sqrt(2.0 / fan_in)
            else:
                raise ValueError(f"unknown init {init}")
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for layer in self.body:
            x = F.relu(layer(x))
        return self.head(x)


class MnistNet(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.head = nn.Linear(800, 10)
        self.fc1 = nn.Linear(784, 800)
        self.fc2 = nn.Linear(800, 800)
        self.p_in = 0.2 if dropout else 0.0
        self.p_hidden = 0.5 if dropout else 0.0
        for layer in (self.fc1, self.fc2, self.head):
            nn.init.normal_(layer.weight, std=0.1)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = F.dropout(x, self.p_in, self.training)
        x = F.dropout(F.relu(self.fc1(x)), self.p_hidden, self.training)
        x = F.dropout(F.relu(self.fc2(x)), self.p_hidden, self.training)
        return self.head(x)


def circle_model(sigma=None):
    return CircleNet(sigma)


def deep_model(init):
    return DeepNet(init)


def mnist_model(dropout):
    return MnistNet(dropout)


def fold_batchnorm(model):
    modules = list(model)
    result = []
    with torch.no_grad():
        for idx, m in enumerate(modules):
            if isinstance(m, nn.BatchNorm1d):
                continue
            bn = modules[idx + 1] if idx + 1 < len(modules) else None
            if isinstance(m, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
                gamma = bn.weight if bn.affine else torch.ones(bn.num_features)
                beta = bn.bias if bn.affine else torch.zeros(bn.num_features)
                s = gamma / torch.sqrt(bn.running_var + bn.eps)
                lin = nn.Linear(m.in_features, m.out_features)
                lin.weight.copy_(s[:, None] * m.weight)
                b = m.bias if m.bias is not None else 0
                lin.bias.copy_(s * (b - bn.running_mean) + beta)
                result.append(lin)
            else:
                result.append(m)
    return nn.Sequential(*result)


class TanhNet(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        self.head = nn.Linear(100, 10)  # registered first, run last; zero init, as for the circle model
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.hidden = nn.ModuleList()
        self.norms = nn.ModuleList()
        for n_in in (784, 100, 100, 100, 100):
            layer = nn.Linear(n_in, 100, bias=not batchnorm)
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="tanh")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            self.hidden.append(layer)
            self.norms.append(nn.BatchNorm1d(100) if batchnorm else nn.Identity())

    def forward(self, x):
        for layer, norm in zip(self.hidden, self.norms):
            x = torch.tanh(norm(layer(x)))
        return self.head(x)


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
