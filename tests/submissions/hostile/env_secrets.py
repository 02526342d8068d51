"""Hostile: dumps every environment variable it can see, looking for secrets."""

import json
import os

from torch import nn

print("ENV " + json.dumps(dict(os.environ), sort_keys=True), flush=True)


def circle_model(sigma=None):
    return nn.Linear(2, 2)
