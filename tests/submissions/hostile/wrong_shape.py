"""Hostile: the model's forward returns 3 outputs per example instead of 2."""

from torch import nn


def circle_model(sigma=None):
    return nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3))
