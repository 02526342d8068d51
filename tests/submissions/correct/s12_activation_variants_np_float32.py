"""Style: ReLU written three ways: x.clamp(min=0) in the circle net, x.relu() in the deep net, torch.relu in
the MNIST net; SIGMAS held as np.float32 values (numpy array of the sweep's picks); nn.Flatten() in front of the
MNIST net; Glorot (hand-written) + 0.1-scaled output layer as the recommended circle init; fold_batchnorm
computes W' = diag(s) W with a matrix product."""

import math

import numpy as np
import torch
from torch import nn

_picked = np.array([0.1, 1.0, 5.0], dtype=np.float32)
SIGMAS = dict(zip(["small", "good", "big"], _picked))


class Circle(nn.Module):
    def __init__(self, sigma):
        super().__init__()
        self.l1 = nn.Linear(2, 6)
        self.l2 = nn.Linear(6, 3)
        self.l3 = nn.Linear(3, 2)
        with torch.no_grad():
            for lin in (self.l1, self.l2, self.l3):
                if sigma is None:
                    std = math.sqrt(2.0 / (lin.in_features + lin.out_features))
                else:
                    std = float(sigma)
                lin.weight.normal_(0.0, std)
                lin.bias.zero_()
            if sigma is None:
                self.l3.weight *= 0.1

    def forward(self, x):
        x = self.l1(x).clamp(min=0)
        x = self.l2(x).clamp(min=0)
        return self.l3(x)


class Deep(nn.Module):
    def __init__(self, init):
        super().__init__()
        widths = [2] + [100] * 19 + [2]
        self.layers = nn.ModuleList()
        for n_in, n_out in zip(widths, widths[1:]):
            lin = nn.Linear(n_in, n_out)
            var = {"normal": 1.0, "xavier": 2.0 / (n_in + n_out), "kaiming": 2.0 / n_in}[init]
            with torch.no_grad():
                lin.weight.normal_(0.0, var**0.5)
                lin.bias.zero_()
            self.layers.append(lin)

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x


class Mnist(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 800)
        self.fc2 = nn.Linear(800, 800)
        self.fc3 = nn.Linear(800, 10)
        self.drop_in = nn.Dropout(0.2 if dropout else 0.0)
        self.drop_hidden = nn.Dropout(0.5 if dropout else 0.0)
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.normal_(fc.weight, 0, 0.1)
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        x = self.flatten(x)
        x = self.drop_in(x)
        x = self.drop_hidden(torch.relu(self.fc1(x)))
        x = self.drop_hidden(torch.relu(self.fc2(x)))
        return self.fc3(x)


def circle_model(sigma=None):
    return Circle(sigma)


def deep_model(init):
    return Deep(init)


def mnist_model(dropout):
    return Mnist(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    children = list(model.children())
    out = []
    skip = False
    for i, layer in enumerate(children):
        if skip:
            skip = False
            continue
        following = children[i + 1] if i + 1 < len(children) else None
        if isinstance(layer, nn.Linear) and isinstance(following, nn.BatchNorm1d):
            bn = following
            s = 1 / torch.sqrt(bn.running_var + bn.eps)
            t = -bn.running_mean * s
            if bn.affine:
                s, t = s * bn.weight, t * bn.weight + bn.bias
            w = torch.diag(s) @ layer.weight
            b = t if layer.bias is None else s * layer.bias + t
            new = nn.Linear(layer.in_features, layer.out_features)
            new.weight.copy_(w)
            new.bias.copy_(b)
            out.append(new)
            skip = True
        else:
            out.append(layer)
    return nn.Sequential(*out)


class Tanh(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fcs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for fan_in in (784, 100, 100, 100, 100):
            fc = nn.Linear(fan_in, 100, bias=not batchnorm)
            nn.init.normal_(fc.weight, 0.0, (5 / 3) / np.sqrt(fan_in))  # Kaiming with the gain of tanh
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
            self.fcs.append(fc)
            if batchnorm:
                self.norms.append(nn.BatchNorm1d(100))
        self.out = nn.Linear(100, 10)
        nn.init.normal_(self.out.weight, 0.0, 0.01)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        x = self.flatten(x)
        for k, fc in enumerate(self.fcs):
            x = fc(x)
            if len(self.norms):
                x = self.norms[k](x)
            x = x.tanh()
        return self.out(x)


def tanh_model(batchnorm=False):
    return Tanh(batchnorm)
