"""Hostile: imports fine, but circle_model() never returns (infinite busy loop)."""

from torch import nn


def circle_model(sigma=None):
    while True:
        pass
    return nn.Linear(2, 2)
