"""Style: functional. Each model creates its weights as nn.Parameter tensors in __init__ (out x in, like
nn.Linear) and forward calls F.linear / F.relu / F.dropout(x, p, training=self.training). Inits written as
formulas (torch.randn(...) * std). fold_batchnorm copies the folded tensors into new nn.Linear layers through
load_state_dict."""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.1, "good": 1.5, "big": 5.0}


class FunctionalMLP(nn.Module):
    def __init__(self, sizes, stds, p_in=0.0, p_hidden=0.0):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out, std in zip(sizes[:-1], sizes[1:], stds):
            self.weights.append(nn.Parameter(torch.randn(n_out, n_in) * std))
            self.biases.append(nn.Parameter(torch.zeros(n_out)))
        self.p_in = p_in
        self.p_hidden = p_hidden

    def forward(self, x):
        if self.p_in > 0:
            x = F.dropout(x, self.p_in, training=self.training)
        n = len(self.weights)
        for k in range(n):
            x = F.linear(x, self.weights[k], self.biases[k])
            if k < n - 1:
                x = F.relu(x)
                if self.p_hidden > 0:
                    x = F.dropout(x, self.p_hidden, training=self.training)
        return x


def circle_model(sigma=None):
    sizes = [2, 6, 3, 2]
    if sigma is None:
        # He for the hidden layers, tiny output layer -> loss at init ~ ln 2
        stds = [math.sqrt(2 / 2), math.sqrt(2 / 6), 0.01 * math.sqrt(2 / 3)]
    else:
        stds = [sigma, sigma, sigma]
    return FunctionalMLP(sizes, stds)


def deep_model(init):
    sizes = [2] + 19 * [100] + [2]
    stds = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        if init == "normal":
            stds.append(1.0)
        elif init == "xavier":
            stds.append(math.sqrt(2 / (fan_in + fan_out)))
        elif init == "kaiming":
            stds.append(math.sqrt(2 / fan_in))
        else:
            raise ValueError("init must be normal, xavier or kaiming")
    return FunctionalMLP(sizes, stds)


def mnist_model(dropout):
    if dropout:
        return FunctionalMLP([784, 800, 800, 10], [0.1] * 3, p_in=0.2, p_hidden=0.5)
    return FunctionalMLP([784, 800, 800, 10], [0.1] * 3)


@torch.no_grad()
def fold_batchnorm(model):
    folded = []
    layers = list(model)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.BatchNorm1d):
            continue  # already merged into the Linear before it
        if isinstance(layer, nn.Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
            bn = layers[i + 1]
            g = bn.weight if bn.affine else 1.0
            beta = bn.bias if bn.affine else 0.0
            a = g / torch.sqrt(bn.running_var + bn.eps)
            b0 = layer.bias if layer.bias is not None else 0.0
            new = nn.Linear(layer.in_features, layer.out_features)
            new.load_state_dict({"weight": layer.weight * a[:, None], "bias": a * (b0 - bn.running_mean) + beta})
            folded.append(new)
        else:
            folded.append(layer)
    return nn.Sequential(*folded)


class FunctionalTanh(nn.Module):
    """The tanh MLP with its own parameters; F.batch_norm with running statistics as buffers."""

    def __init__(self, sizes, batchnorm):
        super().__init__()
        self.batchnorm = batchnorm
        self.weights = nn.ParameterList()
        self.gammas = nn.ParameterList()
        self.betas = nn.ParameterList()
        n = len(sizes) - 1
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            std = (5 / 3) / math.sqrt(n_in) if k < n - 1 else 0.1 / math.sqrt(n_in)
            self.weights.append(nn.Parameter(torch.randn(n_out, n_in) * std))
            if k < n - 1:
                if batchnorm:
                    self.gammas.append(nn.Parameter(torch.ones(n_out)))
                    self.betas.append(nn.Parameter(torch.zeros(n_out)))  # the only shift: no Linear bias
                    self.register_buffer(f"mean{k}", torch.zeros(n_out))
                    self.register_buffer(f"var{k}", torch.ones(n_out))
                else:
                    self.betas.append(nn.Parameter(torch.zeros(n_out)))  # here the Linear's bias
        self.out_bias = nn.Parameter(torch.zeros(sizes[-1]))

    def forward(self, x):
        n = len(self.weights)
        for k in range(n - 1):
            if self.batchnorm:
                x = F.linear(x, self.weights[k])
                x = F.batch_norm(x, getattr(self, f"mean{k}"), getattr(self, f"var{k}"), self.gammas[k],
                                 self.betas[k], training=self.training)  # fmt: skip
            else:
                x = F.linear(x, self.weights[k], self.betas[k])
            x = torch.tanh(x)
        return F.linear(x, self.weights[n - 1], self.out_bias)


def tanh_model(batchnorm=False):
    return FunctionalTanh([784, 100, 100, 100, 100, 100, 10], batchnorm)
