"""Style: a single configurable MLP class reused for all three parts (widths, per-layer init callback,
input/hidden dropout rates); the recommended circle init is Glorot (nn.init.xavier_normal_) for the hidden
layers with a small last layer (Glorot scaled by 0.05); Part 2 inits implemented as variance formulas and applied
as std = sqrt(var). fold_batchnorm walks the model with an iterator and next()."""

import math

import torch
from torch import nn

SIGMAS = {"small": 0.05, "good": 2.0, "big": 8.0}

VARIANCE = {
    "normal": lambda n_in, n_out: 1.0,
    "xavier": lambda n_in, n_out: 2.0 / (n_in + n_out),
    "kaiming": lambda n_in, n_out: 2.0 / n_in,
}


class MLP(nn.Module):
    """Linear -> ReLU -> (Dropout) ... -> Linear, with optional dropout on the input."""

    def __init__(self, widths, init_fn, p_input=0.0, p_hidden=0.0):
        super().__init__()
        blocks = []
        if p_input:
            blocks.append(nn.Dropout(p_input))
        n = len(widths) - 1
        for k in range(n):
            lin = nn.Linear(widths[k], widths[k + 1])
            init_fn(k, n, lin)
            blocks.append(lin)
            if k < n - 1:
                blocks.append(nn.ReLU())
                if p_hidden:
                    blocks.append(nn.Dropout(p_hidden))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


def circle_model(sigma=None):
    def init_fn(k, n, lin):
        if sigma is None:
            gain = 0.05 if k == n - 1 else 1.0
            nn.init.xavier_normal_(lin.weight, gain=gain)
        else:
            nn.init.normal_(lin.weight, 0.0, sigma)
        nn.init.zeros_(lin.bias)

    return MLP([2, 6, 3, 2], init_fn)


def deep_model(init):
    if init not in VARIANCE:
        raise ValueError(f"unknown init {init!r}, expected one of {sorted(VARIANCE)}")

    def init_fn(k, n, lin):
        var = VARIANCE[init](lin.in_features, lin.out_features)
        nn.init.normal_(lin.weight, 0.0, math.sqrt(var))
        nn.init.zeros_(lin.bias)

    return MLP([2] + [100] * 19 + [2], init_fn)


def mnist_model(dropout):
    def init_fn(k, n, lin):
        nn.init.normal_(lin.weight, 0.0, 0.1)
        nn.init.zeros_(lin.bias)

    if dropout:
        return MLP([784, 800, 800, 10], init_fn, p_input=0.2, p_hidden=0.5)
    return MLP([784, 800, 800, 10], init_fn)


@torch.no_grad()
def fold_batchnorm(model):
    it = iter(model)
    result = []
    pending = next(it, None)
    while pending is not None:
        following = next(it, None)
        if isinstance(pending, nn.Linear) and isinstance(following, nn.BatchNorm1d):
            bn = following
            denom = torch.sqrt(bn.running_var + bn.eps)
            gamma = bn.weight if bn.affine else torch.ones_like(denom)
            beta = bn.bias if bn.affine else torch.zeros_like(denom)
            w = pending.weight * (gamma / denom)[:, None]
            b = pending.bias if pending.bias is not None else torch.zeros_like(denom)
            b = gamma * (b - bn.running_mean) / denom + beta
            fused = nn.Linear(pending.in_features, pending.out_features)
            fused.weight.copy_(w)
            fused.bias.copy_(b)
            result.append(fused)
            pending = next(it, None)
        else:
            result.append(pending)
            pending = following
    return nn.Sequential(*result)


def tanh_model(batchnorm=False):
    """makemore's network; the generic MLP above is ReLU-only, so this one is spelled out. Hidden layers:
    var = gain^2 / fan_in with tanh's gain 5/3, applied as std = sqrt(var)."""
    blocks = []
    for fan_in in (784, 100, 100, 100, 100):
        lin = nn.Linear(fan_in, 100, bias=not batchnorm)
        var = (5 / 3) ** 2 / fan_in
        nn.init.normal_(lin.weight, 0.0, math.sqrt(var))
        if lin.bias is not None:
            nn.init.zeros_(lin.bias)
        blocks += [lin, nn.BatchNorm1d(100), nn.Tanh()] if batchnorm else [lin, nn.Tanh()]
    head = nn.Linear(100, 10)
    nn.init.xavier_normal_(head.weight, gain=0.05)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*blocks, head)
