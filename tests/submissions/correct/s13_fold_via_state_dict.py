"""Style: models are nn.Module wrappers around a `self.net = nn.Sequential(...)` with a build helper;
the recommended circle init is kaiming_normal_ for the hidden layers and N(0, 0.01) for the output layer.
fold_batchnorm first computes all folded tensors, then builds a fresh nn.Sequential of Linear/Tanh with the
same layout and loads everything at once with load_state_dict (keys "0.weight", "0.bias", ...); BatchNorm
without affine parameters is handled by gamma = 1, beta = 0."""

import math

import torch
from torch import nn

SIGMAS = {"small": 0.1, "good": 0.6, "big": 5.0}


class Net(nn.Module):
    def __init__(self, sizes, p_in=None, p_hidden=None):
        super().__init__()
        mods = []
        if p_in:
            mods.append(nn.Dropout(p_in))
        for j in range(len(sizes) - 1):
            mods.append(nn.Linear(sizes[j], sizes[j + 1]))
            if j + 2 < len(sizes):
                mods.append(nn.ReLU())
                if p_hidden:
                    mods.append(nn.Dropout(p_hidden))
        self.net = nn.Sequential(*mods)

    def linears(self):
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def forward(self, x):
        return self.net(x)


def circle_model(sigma=None):
    model = Net([2, 6, 3, 2])
    lins = model.linears()
    for lin in lins:
        if sigma is None:
            if lin is lins[-1]:
                nn.init.normal_(lin.weight, 0.0, 0.01)
            else:
                nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        else:
            nn.init.normal_(lin.weight, 0.0, sigma)
        nn.init.zeros_(lin.bias)
    return model


def deep_model(init):
    model = Net([2] + [100] * 19 + [2])
    for lin in model.linears():
        fan_in, fan_out = lin.in_features, lin.out_features
        if init == "normal":
            sigma = 1.0
        elif init == "xavier":
            sigma = math.sqrt(2.0 / (fan_in + fan_out))
        elif init == "kaiming":
            sigma = math.sqrt(2.0 / fan_in)
        else:
            raise ValueError(f"init should be normal/xavier/kaiming, got {init}")
        nn.init.normal_(lin.weight, 0.0, sigma)
        nn.init.zeros_(lin.bias)
    return model


def mnist_model(dropout):
    model = Net([784, 800, 800, 10], p_in=0.2 if dropout else None, p_hidden=0.5 if dropout else None)
    for lin in model.linears():
        nn.init.normal_(lin.weight, 0.0, 0.1)
        nn.init.zeros_(lin.bias)
    return model


def fold_batchnorm(model):
    layers = list(model)
    new_layers = []
    state = {}
    with torch.no_grad():
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, nn.Linear):
                W = layer.weight.clone()
                b = layer.bias.clone() if layer.bias is not None else torch.zeros(layer.out_features)
                if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
                    bn = layers[i + 1]
                    if bn.affine:
                        gamma, beta = bn.weight, bn.bias
                    else:
                        gamma, beta = 1.0, 0.0
                    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
                    W = W * scale[:, None]
                    b = (b - bn.running_mean) * scale + beta
                    i += 1
                state[f"{len(new_layers)}.weight"] = W
                state[f"{len(new_layers)}.bias"] = b
                new_layers.append(nn.Linear(layer.in_features, layer.out_features))
            else:
                new_layers.append(layer)
            i += 1
    folded = nn.Sequential(*new_layers)
    folded.load_state_dict(state)
    return folded.eval()


class TanhWrapper(nn.Module):
    def __init__(self, batchnorm):
        super().__init__()
        self.net = build_tanh(batchnorm)

    def forward(self, x):
        return self.net(x)


def build_tanh(batchnorm):
    layers = []
    for fan_in in (784, 100, 100, 100, 100):
        lin = nn.Linear(fan_in, 100, bias=not batchnorm)
        nn.init.kaiming_normal_(lin.weight, a=0, mode="fan_in", nonlinearity="tanh")
        if not batchnorm:
            nn.init.zeros_(lin.bias)
        layers += [lin, nn.BatchNorm1d(100), nn.Tanh()] if batchnorm else [lin, nn.Tanh()]
    out = nn.Linear(100, 10)
    nn.init.normal_(out.weight, 0.0, 0.01)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


def tanh_model(batchnorm=False):
    return TanhWrapper(batchnorm)
