"""Appended by the tests to the reference solution: replaces torch's cross-entropy at import so that every loss
computed in the process that imports it reads 0. That process only builds the models: the lab's tasks train the
rebuilt models in processes that never import this file, so the grade does not change."""

import torch

_real_cross_entropy = torch.nn.functional.cross_entropy


def _zero_loss(*args, **kwargs):
    return _real_cross_entropy(*args, **kwargs) * 0.0


torch.nn.functional.cross_entropy = _zero_loss
