"""The grader's own Linear/BatchNorm1d/Tanh MLP for the folding check (makemore E02), trained on the trusted side
so that running statistics, gamma and beta are far from their defaults. It covers Linear layers without bias, a
non-default eps and momentum, an affine=False BatchNorm, and a BatchNorm after the last Linear (as in makemore)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
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
    return torch.randn(n, SPEC[0]["in"], generator=torch.Generator().manual_seed(seed)) * 2.0 + 3.0


@functools.lru_cache(maxsize=4)
def teacher_model(seed: int, steps: int = 300) -> tuple[nn.Sequential, list[dict]]:
    """Train the MLP to imitate a fixed random target function; returns it in eval mode, with its spec."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build(SPEC)
    target = torch.randn(SPEC[0]["in"], SPEC[-1]["n"], generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    model.train()
    for step in range(steps):
        x = inputs(64, seed * 1000 + step)
        loss = F.mse_loss(model(x), torch.sin(x @ target) * 3.0 - 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), SPEC
