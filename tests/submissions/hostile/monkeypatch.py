"""Hostile: replaces library and builtin functions at import (cross_entropy, open, print, json.dumps,
os._exit, sys.exit, torch.save, safetensors), then behaves normally."""

import builtins
import json
import os
import sys

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn


def sabotage(*args, **kwargs):
    raise RuntimeError("sabotaged")


F.cross_entropy = sabotage
torch.nn.functional.cross_entropy = sabotage
builtins.open = sabotage
builtins.print = sabotage
json.dumps = sabotage
json.dump = sabotage
os._exit = sabotage
sys.exit = sabotage
torch.save = sabotage
safetensors.torch.save = sabotage
safetensors.torch.save_file = sabotage


def circle_model(sigma=None):
    return nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 2))
