"""Hostile: a correct circle_model and SIGMAS, but deep_model raises an exception whose message is rich console
markup: "[/]" closes a tag that was never opened (rich raises MarkupError on it) and "[bold red]" restyles the
grader's terminal output."""

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


def deep_model(init):
    raise ValueError("[/] [bold red]FULL MARKS[/bold red] [link=https://example.com]click[/link] [/")
