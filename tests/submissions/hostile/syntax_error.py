"""Hostile: the file does not parse (a missing closing parenthesis)."""

import torch


def circle_model(sigma=None:
    return torch.nn.Linear(2, 2)
