"""Lab: initialization & regularization. Fill in every function; keep the names and signatures.

Submit this one file. The grader builds your models in a sandbox and trains them on its own data:
standardized 2-D circle points for parts 1 and 2, flattened standardized 28x28 images for part 3.
Every model returns logits (no softmax). The full contract is in docs/students.md.
"""

import torch
from torch import nn

# Part 1: your three values of sigma for N(0, sigma) weight init (see the lab text for what each should do).
SIGMAS = {"small": 0.0, "good": 0.0, "big": 0.0}


def circle_model(sigma: float | None = None) -> nn.Module:
    """2 -> 6 -> 3 -> 2 with ReLU. With `sigma`: every Linear weight ~ N(0, sigma), biases 0.
    With sigma=None: the init you recommend (the grader checks its loss at init against ln 2)."""
    raise NotImplementedError("circle_model")


def deep_model(init: str) -> nn.Module:
    """20 Linear layers, about 100 units wide, ReLU, 2 inputs, 2 outputs, zero biases.
    init: "normal" (N(0, 1)), "xavier" (Glorot) or "kaiming" (He); implement the formulas yourself."""
    raise NotImplementedError("deep_model")


def mnist_model(dropout: bool) -> nn.Module:
    """784 -> 800 -> 800 -> 10 with ReLU. With dropout: 20% on the input, 50% after each hidden layer.
    Weights N(0, 0.1), biases 0."""
    raise NotImplementedError("mnist_model")


@torch.no_grad()
def fold_batchnorm(model: nn.Sequential) -> nn.Module:
    """Given a trained nn.Sequential of Linear, BatchNorm1d and Tanh layers in eval mode, return an
    nn.Sequential of Linear and Tanh layers only that gives the same outputs."""
    raise NotImplementedError("fold_batchnorm")


def tanh_model(batchnorm: bool = False) -> nn.Module:
    """makemore's MLP on the images: 784 -> 100 -> 100 -> 100 -> 100 -> 100 -> 10 with tanh after each hidden
    layer. Hidden weights with Kaiming's gain for tanh: std (5/3) / sqrt(fan_in), biases 0.
    With batchnorm: each hidden layer is Linear(bias=False) -> BatchNorm1d(100) -> Tanh.
    TODO: build it; the output layer's init is up to you (makemore scales it down)."""
    raise NotImplementedError("tanh_model")
