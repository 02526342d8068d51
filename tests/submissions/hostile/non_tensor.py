"""Hostile: the model's forward returns a Python list instead of a tensor."""

from torch import nn


class ListModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x):
        return self.linear(x).tolist()


def circle_model(sigma=None):
    return ListModel()
