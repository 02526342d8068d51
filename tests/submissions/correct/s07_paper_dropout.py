"""Style: dropout exactly as in the original paper (Srivastava et al. 2014, the lab's reference): units are
kept with probability 1 - p and NOT rescaled during training; at test time the outgoing activations are
multiplied by the keep probability (1 - p) instead. Implemented as a custom Module with a Bernoulli mask.
Layers as attributes in custom Modules; He init plus small output layer for the recommendation."""

import math

import torch
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


class PaperDropout(nn.Module):
    """Dropout as in Srivastava et al. (2014): train: r ~ Bernoulli(1 - p), y = r * x; test: y = (1 - p) * x."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        keep = 1.0 - self.p
        if self.training:
            r = torch.bernoulli(torch.full_like(x, keep))
            return x * r
        return x * keep


def _init(layer, std):
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)


class CircleNet(nn.Module):
    def __init__(self, sigma):
        super().__init__()
        self.hidden1 = nn.Linear(2, 6)
        self.hidden2 = nn.Linear(6, 3)
        self.out = nn.Linear(3, 2)
        self.act = nn.ReLU()
        for layer in (self.hidden1, self.hidden2, self.out):
            _init(layer, sigma if sigma is not None else math.sqrt(2 / layer.in_features))
        if sigma is None:
            with torch.no_grad():
                self.out.weight.mul_(0.01)

    def forward(self, x):
        return self.out(self.act(self.hidden2(self.act(self.hidden1(x)))))


class DeepNet(nn.Module):
    def __init__(self, init):
        super().__init__()
        dims = [2] + [100] * 19 + [2]
        self.linears = nn.ModuleList()
        for fan_in, fan_out in zip(dims, dims[1:]):
            layer = nn.Linear(fan_in, fan_out)
            std = {
                "normal": 1.0,
                "xavier": math.sqrt(2 / (fan_in + fan_out)),
                "kaiming": math.sqrt(2 / fan_in),
            }[init]
            _init(layer, std)
            self.linears.append(layer)

    def forward(self, x):
        for layer in self.linears[:-1]:
            x = torch.relu(layer(x))
        return self.linears[-1](x)


class DropoutNet(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.dropout = dropout
        self.fc1 = nn.Linear(784, 800)
        self.fc2 = nn.Linear(800, 800)
        self.fc3 = nn.Linear(800, 10)
        for layer in (self.fc1, self.fc2, self.fc3):
            _init(layer, 0.1)
        self.drop_input = PaperDropout(0.2)
        self.drop_hidden = PaperDropout(0.5)

    def forward(self, x):
        if self.dropout:
            x = self.drop_input(x)
        x = torch.relu(self.fc1(x))
        if self.dropout:
            x = self.drop_hidden(x)
        x = torch.relu(self.fc2(x))
        if self.dropout:
            x = self.drop_hidden(x)
        return self.fc3(x)


def circle_model(sigma=None):
    return CircleNet(sigma)


def deep_model(init):
    return DeepNet(init)


def mnist_model(dropout):
    return DropoutNet(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    layers = []
    for m in model:
        if isinstance(m, nn.BatchNorm1d):
            lin = layers[-1]
            w_bn = m.weight if m.affine else torch.ones_like(m.running_mean)
            b_bn = m.bias if m.affine else torch.zeros_like(m.running_mean)
            factor = w_bn / (m.running_var + m.eps).sqrt()
            bias = lin.bias if lin.bias is not None else torch.zeros_like(m.running_mean)
            fused = nn.Linear(lin.in_features, lin.out_features)
            fused.weight.copy_(factor.unsqueeze(1) * lin.weight)
            fused.bias.copy_(factor * (bias - m.running_mean) + b_bn)
            layers[-1] = fused
        else:
            layers.append(m)
    return nn.Sequential(*layers)


class TanhBlock(nn.Module):
    """Linear -> (BatchNorm1d) -> Tanh with Kaiming's tanh gain; no Linear bias when a BatchNorm1d follows."""

    def __init__(self, n_in, n_out, batchnorm):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=not batchnorm)
        nn.init.normal_(self.linear.weight, 0.0, (5 / 3) / math.sqrt(n_in))
        if self.linear.bias is not None:
            nn.init.zeros_(self.linear.bias)
        self.norm = nn.BatchNorm1d(n_out) if batchnorm else None

    def forward(self, x):
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        return torch.tanh(x)


class TanhNet(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        self.blocks = nn.Sequential(*[TanhBlock(n, 100, batchnorm) for n in (784, 100, 100, 100, 100)])
        self.out = nn.Linear(100, 10)
        _init(self.out, 0.01)

    def forward(self, x):
        return self.out(self.blocks(x))


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
