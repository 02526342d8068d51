"""Style: hand-written inverted dropout with a random mask (`mask = (torch.rand_like(x) > p).float();
x = x * mask / (1 - p)`, only when self.training), inside a custom Module; in-place nn.ReLU(inplace=True)
in Sequential containers; He init with the output scaled by 0.01 for the recommendation."""

import math

import torch
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


class MyDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training and self.p > 0:
            mask = (torch.rand_like(x) > self.p).float()
            x = x * mask / (1 - self.p)
        return x

    def extra_repr(self):
        return f"p={self.p}"


def _normal_init(linear, std):
    with torch.no_grad():
        linear.weight.normal_(0, std)
        linear.bias.fill_(0.0)
    return linear


def circle_model(sigma=None):
    if sigma is None:
        l1 = _normal_init(nn.Linear(2, 6), math.sqrt(2 / 2))
        l2 = _normal_init(nn.Linear(6, 3), math.sqrt(2 / 6))
        l3 = _normal_init(nn.Linear(3, 2), 0.01 * math.sqrt(2 / 3))
    else:
        l1 = _normal_init(nn.Linear(2, 6), sigma)
        l2 = _normal_init(nn.Linear(6, 3), sigma)
        l3 = _normal_init(nn.Linear(3, 2), sigma)
    return nn.Sequential(l1, nn.ReLU(inplace=True), l2, nn.ReLU(inplace=True), l3)


def deep_model(init):
    layers = []
    n_in = 2
    for i in range(20):
        n_out = 2 if i == 19 else 100
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = math.sqrt(2 / (n_in + n_out))
        elif init == "kaiming":
            std = math.sqrt(2 / n_in)
        else:
            raise ValueError(init)
        layers.append(_normal_init(nn.Linear(n_in, n_out), std))
        if i < 19:
            layers.append(nn.ReLU(inplace=True))
        n_in = n_out
    return nn.Sequential(*layers)


def mnist_model(dropout):
    p_in, p_hid = (0.2, 0.5) if dropout else (0.0, 0.0)
    return nn.Sequential(
        MyDropout(p_in),
        _normal_init(nn.Linear(784, 800), 0.1),
        nn.ReLU(inplace=True),
        MyDropout(p_hid),
        _normal_init(nn.Linear(800, 800), 0.1),
        nn.ReLU(inplace=True),
        MyDropout(p_hid),
        _normal_init(nn.Linear(800, 10), 0.1),
    )


@torch.no_grad()
def fold_batchnorm(model):
    out = []
    for layer in model:
        if isinstance(layer, nn.BatchNorm1d):
            prev = out[-1]
            assert isinstance(prev, nn.Linear)
            scale = torch.rsqrt(layer.running_var + layer.eps)
            shift = -layer.running_mean * scale
            if layer.affine:
                shift = shift * layer.weight + layer.bias
                scale = scale * layer.weight
            if prev.bias is None:
                prev_bias = torch.zeros(prev.out_features)
            else:
                prev_bias = prev.bias
            merged = nn.Linear(prev.in_features, prev.out_features)
            merged.weight.data = prev.weight * scale[:, None]
            merged.bias.data = prev_bias * scale + shift
            out[-1] = merged
        else:
            out.append(layer)
    return nn.Sequential(*out)


class MakemoreLinear(nn.Module):
    """makemore's Linear: the weight stored (fan_in, fan_out) and used as x @ W."""

    def __init__(self, fan_in, fan_out, bias=True, gain=5 / 3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_in, fan_out) * gain / fan_in**0.5)
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x):
        out = x @ self.weight
        if self.bias is not None:
            out = out + self.bias
        return out


def tanh_model(batchnorm=False):
    layers = []
    for fan_in in [784, 100, 100, 100, 100]:
        layers.append(MakemoreLinear(fan_in, 100, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(100))
        layers.append(nn.Tanh())
    layers.append(MakemoreLinear(100, 10, gain=0.1))  # last layer: less confident
    return nn.Sequential(*layers)
