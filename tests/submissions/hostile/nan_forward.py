"""Hostile: the model's forward returns NaN everywhere (valid data, just useless)."""

import torch
from torch import nn


class NanModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x):
        return self.linear(x) * float("nan")


def circle_model(sigma=None):
    return NanModel()
