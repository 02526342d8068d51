"""Hostile: a correct circle_model and SIGMAS, but ANSI escape sequences (clear the screen, switch to red, set the
window title) and other control characters in an exception's message and class name (deep_model) and in a
module's class name (the model that fold_batchnorm returns), aimed at the grader's terminal and result files."""

import math

import torch
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}
ESC = "\x1b[2J\x1b[31m"


def circle_model(sigma=None):
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
    for layer in model[::2]:
        nn.init.normal_(layer.weight, 0.0, sigma if sigma is not None else math.sqrt(2.0 / layer.in_features))
        nn.init.zeros_(layer.bias)
    if sigma is None:
        model[-1].weight.data *= 0.1
    return model


def deep_model(init):
    painted_error = type(ESC + "Error\x1b[0m", (RuntimeError,), {})
    raise painted_error(ESC + "all checks passed\x1b[0m\r\x07\x00\x9b31m \x1b]0;pwned\x07")


Painted = type(ESC + "Linear\x1b[0m", (torch.nn.Module,), {"forward": lambda self, x: x})


def fold_batchnorm(model):
    return nn.Sequential(Painted())
