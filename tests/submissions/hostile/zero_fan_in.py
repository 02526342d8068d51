"""Hostile: a correct circle_model and SIGMAS, but deep_model's first layer is Linear(0, 100): it reads none of
the input's features (fan_in 0), so every formula that divides by fan_in divides by zero on the grading side."""

import math

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


class NoFeatures(nn.Module):
    def forward(self, x):
        return x[:, :0]


def deep_model(init):
    layers = [NoFeatures(), nn.Linear(0, 100)]
    for _ in range(18):
        layers += [nn.ReLU(), nn.Linear(100, 100)]
    layers += [nn.ReLU(), nn.Linear(100, 2)]
    for layer in layers:
        if isinstance(layer, nn.Linear) and layer.in_features:
            nn.init.normal_(layer.weight, 0.0, 1.0)
    return nn.Sequential(*layers)
