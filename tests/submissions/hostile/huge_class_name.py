"""Hostile: a correct circle_model and SIGMAS, but class names of megabytes: the modules of the model that
fold_batchnorm returns (their names come back as layer types: 1.5 MB in one word, and 0.5 MB of words with "Norm"
in them, which the check names as a normalization layer left in the model) and the exception that deep_model
raises (its name is part of the message). The file stays small; the names are made when it is imported."""

import math

import torch
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def circle_model(sigma=None):
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
    for layer in model[::2]:
        nn.init.normal_(layer.weight, 0.0, sigma if sigma is not None else math.sqrt(2.0 / layer.in_features))
        nn.init.zeros_(layer.bias)
    if sigma is None:
        model[-1].weight.data *= 0.1
    return model


Huge = type("A" * 1_500_000, (torch.nn.Module,), {"forward": lambda self, x: x[:, :4]})
Wordy = type("Norm " * 100_000, (torch.nn.Module,), {"forward": lambda self, x: x})
HugeError = type("B" * 1_500_000, (Exception,), {})


def deep_model(init):
    raise HugeError("deep")


def fold_batchnorm(model):
    return nn.Sequential(Huge(), Wordy())
