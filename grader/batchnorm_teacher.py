"""The grader's own Linear/BatchNorm1d/Tanh MLP for the folding check (makemore E02), trained on the trusted side
so that running statistics, gamma and beta are far from their defaults. It covers Linear layers without bias, a
non-default eps and momentum, an affine=False BatchNorm, and a BatchNorm after the last Linear (as in makemore).

The network learns a real function, a fixed random sum of sines of its inputs whose outputs have a std of order 1,
so that the check compares outputs that spread over a wide range rather than near-constant ones. Training runs in
float64 with every random draw from a seeded generator and a hand-written Adam step (no BLAS-dependent float32
drift, and no torch.optim, whose first use imports torch._dynamo for over a second), and the trained network is
then rounded to float32 once: the same seed gives the same float32 teacher in grading, in the Session and in the
sandbox that folds it."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

SPEC: list[dict] = [
    {"type": "linear", "in": 8, "out": 32, "bias": False},
    {"type": "batchnorm", "n": 32, "eps": 1e-3, "momentum": 0.1, "affine": True},
    {"type": "tanh"},
    {"type": "linear", "in": 32, "out": 32, "bias": True},
    {"type": "batchnorm", "n": 32, "eps": 1e-5, "momentum": 0.2, "affine": False},
    {"type": "tanh"},
    {"type": "linear", "in": 32, "out": 16, "bias": True},
    {"type": "batchnorm", "n": 16, "eps": 1e-2, "momentum": 0.1, "affine": True},
    {"type": "tanh"},
    {"type": "linear", "in": 16, "out": 4, "bias": False},
    {"type": "batchnorm", "n": 4, "eps": 1e-5, "momentum": 0.1, "affine": True},
]
INPUT_MEAN, INPUT_STD = 3.0, 2.0  # inputs far from N(0, 1), so that the first running mean and variance are too
SINES = 6  # the target is a sum of this many sines of random directions of the (standardized) inputs
HIDDEN_SCALE = 3.0  # hidden Linear weights start 3 times PyTorch's default: running variances far from 1
STEPS, BATCH, LR = 200, 128, 0.03  # Adam with a cosine decay to 0: well under a second of CPU


def build(spec: list[dict]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for layer in spec:
        if layer["type"] == "linear":
            layers.append(nn.Linear(layer["in"], layer["out"], bias=layer["bias"]))
        elif layer["type"] == "batchnorm":
            layers.append(
                nn.BatchNorm1d(layer["n"], eps=layer["eps"], momentum=layer["momentum"], affine=layer["affine"])
            )
        elif layer["type"] == "tanh":
            layers.append(nn.Tanh())
        else:
            raise ValueError(f"unknown layer type {layer['type']!r}")
    return nn.Sequential(*layers)


def inputs(n: int, seed: int) -> torch.Tensor:
    """Inputs with a non-zero mean and scale, so that the first running mean and variance are far from 0 and 1."""
    x = torch.randn(n, SPEC[0]["in"], generator=torch.Generator().manual_seed(seed))
    return x * INPUT_STD + INPUT_MEAN


def target(x: torch.Tensor, seed: int) -> torch.Tensor:
    """The smooth function the teacher learns (float64): per output, an offset plus a random mix of sines of
    random directions of the standardized input, each sine's argument with a std of about 1.2 over the inputs."""
    g = torch.Generator().manual_seed(10_000 + seed)
    n_in, n_out = SPEC[0]["in"], SPEC[-1]["n"]
    directions = torch.randn(n_in, SINES, generator=g, dtype=torch.float64) * (1.2 / math.sqrt(n_in))
    phases = torch.rand(SINES, generator=g, dtype=torch.float64) * (2 * math.pi)
    mix = torch.randn(SINES, n_out, generator=g, dtype=torch.float64) * 0.8
    offsets = torch.rand(n_out, generator=g, dtype=torch.float64) * 3.0 - 1.5
    z = (x.double() - INPUT_MEAN) / INPUT_STD
    return torch.sin(z @ directions + phases) @ mix + offsets


@functools.lru_cache(maxsize=4)
def teacher_model(seed: int, steps: int = STEPS) -> tuple[nn.Sequential, list[dict]]:
    """Train the MLP (float64, in train mode, on one CPU thread) on the target function; returns it in eval mode and
    float32, with its spec."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only spin (seconds of CPU on a busy machine)
    try:
        model = _trained(seed, steps)
    finally:
        torch.set_num_threads(threads)
    return model.eval().float(), SPEC


def _trained(seed: int, steps: int) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build(SPEC).double()
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear) and m.in_features != SPEC[0]["in"]:
                m.weight.mul_(HIDDEN_SCALE)  # BatchNorm undoes the scale: it only moves the running variances
            if isinstance(m, nn.BatchNorm1d) and m.affine:  # gamma and beta start away from 1 and 0 as well
                m.weight.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) * 1.5 + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64) * 0.5)
    x_train = inputs(steps * BATCH, seed=20_000 + seed).double().view(steps, BATCH, -1)
    y_train = target(x_train, seed)
    params = list(model.parameters())
    moment1 = [torch.zeros_like(p) for p in params]
    moment2 = [torch.zeros_like(p) for p in params]
    beta1, beta2 = 0.9, 0.999
    model.train()
    for step in range(steps):
        loss = (model(x_train[step]) - y_train[step]).square().mean()
        grads = torch.autograd.grad(loss, params)
        lr = LR * 0.5 * (1 + math.cos(math.pi * step / steps))
        with torch.no_grad():  # Adam, as torch.optim.Adam computes it
            for p, grad, m1, m2 in zip(params, grads, moment1, moment2, strict=True):
                m1.mul_(beta1).add_(grad, alpha=1 - beta1)
                m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (m2 / (1 - beta2 ** (step + 1))).sqrt_().add_(1e-8)
                p.addcdiv_(m1, denom, value=-lr / (1 - beta1 ** (step + 1)))
    return model
