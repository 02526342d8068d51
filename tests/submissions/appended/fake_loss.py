"""Appended by the tests to the reference solution: replaces torch's cross-entropy at import so that every loss
computed inside the sandbox reads 0. Scores rest on losses computed outside the sandbox, so the measured loss at init
does not change (and training, which the sandbox does with that loss, learns nothing)."""

import torch

_real_cross_entropy = torch.nn.functional.cross_entropy


def _zero_loss(*args, **kwargs):
    return _real_cross_entropy(*args, **kwargs) * 0.0


torch.nn.functional.cross_entropy = _zero_loss
