"""Style: the recommended circle init is He-*uniform* (nn.init.kaiming_uniform_ with nonlinearity="relu") with
the output layer's weights divided by 100 afterwards; the MNIST net flattens with torch.flatten(x, 1) and creates
its dropout modules only when needed, in an nn.ModuleDict; deep_model computes fan_in / fan_out with
nn.init._calculate_fan_in_and_fan_out. fold_batchnorm fuses each pair with torch.nn.utils.fusion.fuse_linear_bn_eval,
replacing an affine=False BatchNorm by an affine one with gamma = 1, beta = 0."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


class CircleMLP(nn.Module):
    def __init__(self, sigma=None):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
        for m in self.layers:
            if isinstance(m, nn.Linear):
                if sigma is None:
                    nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, sigma)
                nn.init.zeros_(m.bias)
        if sigma is None:
            with torch.no_grad():
                self.layers[-1].weight /= 100.0

    def forward(self, x):
        return self.layers(x)


def deep_model(init):
    layers = []
    for i in range(20):
        fan_in = 2 if i == 0 else 100
        fan_out = 2 if i == 19 else 100
        lin = nn.Linear(fan_in, fan_out)
        fi, fo = nn.init._calculate_fan_in_and_fan_out(lin.weight)
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = math.sqrt(2.0 / (fi + fo))
        elif init == "kaiming":
            std = math.sqrt(2.0 / fi)
        else:
            raise ValueError(f"bad init {init}")
        nn.init.normal_(lin.weight, 0.0, std)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < 19:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MnistMLP(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.fc1 = nn.Linear(784, 800)
        self.fc2 = nn.Linear(800, 800)
        self.out = nn.Linear(800, 10)
        self.drops = nn.ModuleDict()
        if dropout:
            self.drops["input"] = nn.Dropout(0.2)
            self.drops["h1"] = nn.Dropout(0.5)
            self.drops["h2"] = nn.Dropout(0.5)
        for lin in (self.fc1, self.fc2, self.out):
            nn.init.normal_(lin.weight, mean=0.0, std=0.1)
            nn.init.zeros_(lin.bias)

    def _drop(self, name, x):
        return self.drops[name](x) if name in self.drops else x

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = self._drop("input", x)
        x = self._drop("h1", F.relu(self.fc1(x)))
        x = self._drop("h2", F.relu(self.fc2(x)))
        return self.out(x)


def circle_model(sigma=None):
    return CircleMLP(sigma)


def mnist_model(dropout):
    return MnistMLP(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    model = copy.deepcopy(model).eval()
    layers = list(model)
    folded = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm1d):
            bn = layer
            if not bn.affine:
                affine_bn = nn.BatchNorm1d(bn.num_features, eps=bn.eps).eval()
                affine_bn.running_mean.copy_(bn.running_mean)
                affine_bn.running_var.copy_(bn.running_var)
                bn = affine_bn  # gamma = 1, beta = 0 by default
            folded.append(fuse_linear_bn_eval(folded.pop(), bn))
        else:
            folded.append(layer)
    return nn.Sequential(*folded)


class TanhMLP(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        self.hidden = nn.ModuleList()
        self.norms = nn.ModuleDict()  # only when asked for, like the dropout modules above
        for k, fan_in in enumerate((784, 100, 100, 100, 100)):
            layer = nn.Linear(fan_in, 100, bias=not batchnorm)
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="tanh")  # U(-b, b), b = (5/3) sqrt(3 / fan_in)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            self.hidden.append(layer)
            if batchnorm:
                self.norms[f"bn{k}"] = nn.BatchNorm1d(100)
        self.out = nn.Linear(100, 10)
        with torch.no_grad():
            self.out.weight /= 100

    def forward(self, x):
        x = torch.flatten(x, 1)
        for k, layer in enumerate(self.hidden):
            x = layer(x)
            if f"bn{k}" in self.norms:
                x = self.norms[f"bn{k}"](x)
            x = torch.tanh(x)
        return self.out(x)


def tanh_model(batchnorm=False):
    return TanhMLP(batchnorm)
