"""Style: in-place ReLU everywhere: nn.ReLU(inplace=True) in the circle Sequential, x.relu_() in the deep
net's forward, F.relu(x, inplace=True) in the MNIST net's forward (dropout through nn.Dropout layers applied
after the in-place activation). Kaiming via nn.init.kaiming_normal_(mode="fan_in", nonlinearity="relu") for the
recommended circle model with the output layer shrunk afterwards. fold_batchnorm handles bias=False Linear
layers by creating a bias."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def circle_model(sigma=None):
    net = nn.Sequential(
        nn.Linear(2, 6),
        nn.ReLU(inplace=True),
        nn.Linear(6, 3),
        nn.ReLU(inplace=True),
        nn.Linear(3, 2),
    )
    for m in net.modules():
        if isinstance(m, nn.Linear):
            if sigma is None:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            else:
                nn.init.normal_(m.weight, std=sigma)
            nn.init.zeros_(m.bias)
    if sigma is None:
        with torch.no_grad():
            net[4].weight.mul_(0.01)
    return net


class Deep(nn.Module):
    def __init__(self, init):
        super().__init__()
        sizes = [2] + [100] * 19 + [2]
        self.fcs = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))
        for fc in self.fcs:
            if init == "normal":
                std = 1.0
            elif init == "xavier":
                std = math.sqrt(2.0 / (fc.in_features + fc.out_features))
            elif init == "kaiming":
                std = math.sqrt(2.0 / fc.in_features)
            else:
                raise ValueError(init)
            with torch.no_grad():
                fc.weight.normal_(0, std)
                fc.bias.zero_()

    def forward(self, x):
        for fc in self.fcs[:-1]:
            x = fc(x).relu_()
        return self.fcs[-1](x)


class Mnist(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.use_dropout = dropout
        self.l1 = nn.Linear(784, 800)
        self.l2 = nn.Linear(800, 800)
        self.l3 = nn.Linear(800, 10)
        self.d_in = nn.Dropout(0.2)
        self.d_h1 = nn.Dropout(0.5)
        self.d_h2 = nn.Dropout(0.5)
        for lin in (self.l1, self.l2, self.l3):
            nn.init.normal_(lin.weight, 0, 0.1)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        if self.use_dropout:
            x = self.d_in(x)
        x = F.relu(self.l1(x), inplace=True)
        if self.use_dropout:
            x = self.d_h1(x)
        x = F.relu(self.l2(x), inplace=True)
        if self.use_dropout:
            x = self.d_h2(x)
        return self.l3(x)


def deep_model(init):
    return Deep(init)


def mnist_model(dropout):
    return Mnist(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    layers = [m for m in model]
    i = 0
    out = []
    while i < len(layers):
        cur = layers[i]
        if isinstance(cur, nn.Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
            bn = layers[i + 1]
            if cur.bias is None:
                new_lin = nn.Linear(cur.in_features, cur.out_features, bias=True)
                new_lin.weight.copy_(cur.weight)
                new_lin.bias.zero_()
                cur = new_lin
            else:
                cur = nn.Linear(cur.in_features, cur.out_features).requires_grad_(False)
                cur.weight.copy_(layers[i].weight)
                cur.bias.copy_(layers[i].bias)
            inv = 1.0 / torch.sqrt(bn.running_var + bn.eps)
            cur.weight.mul_(inv[:, None])
            cur.bias.sub_(bn.running_mean).mul_(inv)
            if bn.affine:
                cur.weight.mul_(bn.weight[:, None])
                cur.bias.mul_(bn.weight).add_(bn.bias)
            out.append(cur)
            i += 2
        else:
            out.append(cur)
            i += 1
    return nn.Sequential(*out)


class TanhNet(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        widths = [784, 100, 100, 100, 100, 100]
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=not batchnorm) for a, b in zip(widths[:-1], widths[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm1d(b) for b in widths[1:]) if batchnorm else None
        self.out = nn.Linear(100, 10)
        for lin in self.linears:
            nn.init.kaiming_normal_(lin.weight, mode="fan_in", nonlinearity="tanh")
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        with torch.no_grad():
            self.out.weight.mul_(0.1)

    def forward(self, x):
        for k, lin in enumerate(self.linears):
            x = lin(x)
            if self.bns is not None:
                x = self.bns[k](x)
            x.tanh_()  # in place, like the ReLUs above
        return self.out(x)


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
