"""Style: nn.Sequential everywhere, layers built in loops from a list of widths, init through model.apply
with a closure (the lab's init_weights pattern); He init with a 0.01-scaled output layer as the recommendation;
fold_batchnorm assigns weight.data / bias.data of new nn.Linear layers and uses torch.rsqrt."""

import math

import torch
import torch.nn as nn

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def make_mlp(sizes, dropout_in=0.0, dropout_hidden=0.0):
    layers = []
    if dropout_in > 0:
        layers.append(nn.Dropout(dropout_in))
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:  # no activation after the last layer
            layers.append(nn.ReLU())
            if dropout_hidden > 0:
                layers.append(nn.Dropout(dropout_hidden))
    return nn.Sequential(*layers)


def circle_model(sigma=None):
    net = make_mlp([2, 6, 3, 2])

    def init_weights(m):
        if isinstance(m, nn.Linear):
            if sigma is None:
                std = math.sqrt(2 / m.in_features)  # He
            else:
                std = sigma
            nn.init.normal_(m.weight.data, 0, std)
            nn.init.zeros_(m.bias.data)

    net.apply(init_weights)
    if sigma is None:
        # make the last layer small so that the initial loss is ~ln(2)
        net[-1].weight.data *= 0.01
    return net


def deep_model(init):
    sizes = [2] + [100] * 19 + [2]
    net = make_mlp(sizes)
    for m in net:
        if not isinstance(m, nn.Linear):
            continue
        fan_in, fan_out = m.in_features, m.out_features
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = math.sqrt(2 / (fan_in + fan_out))
        elif init == "kaiming":
            std = math.sqrt(2 / fan_in)
        else:
            raise ValueError(init)
        nn.init.normal_(m.weight.data, 0, std)
        nn.init.zeros_(m.bias.data)
    return net


def mnist_model(dropout):
    if dropout:
        net = make_mlp([784, 800, 800, 10], dropout_in=0.2, dropout_hidden=0.5)
    else:
        net = make_mlp([784, 800, 800, 10])
    # make_mlp puts a Dropout after the last ReLU too, i.e. after each hidden layer, never after the output
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight.data, 0, 0.1)
            nn.init.zeros_(m.bias.data)
    return net


@torch.no_grad()
def fold_batchnorm(model):
    layers = list(model.children())
    new_layers = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
            bn = layers[i + 1]
            inv_std = torch.rsqrt(bn.running_var + bn.eps)
            gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
            beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
            b = layer.bias if layer.bias is not None else torch.zeros(layer.out_features)
            fused = nn.Linear(layer.in_features, layer.out_features)
            fused.weight.data = layer.weight * (gamma * inv_std).unsqueeze(1)
            fused.bias.data = (b - bn.running_mean) * gamma * inv_std + beta
            new_layers.append(fused)
            i += 2
        else:
            new_layers.append(layer)
            i += 1
    return nn.Sequential(*new_layers)


def tanh_model(batchnorm=False):
    sizes = [784, 100, 100, 100, 100, 100]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm1d(sizes[i + 1]))
        layers.append(nn.Tanh())
    layers.append(nn.Linear(100, 10))
    net = nn.Sequential(*layers)

    def init_weights(m):
        if isinstance(m, nn.Linear) and m.out_features == 100:
            nn.init.kaiming_normal_(m.weight, nonlinearity="tanh")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    net.apply(init_weights)
    with torch.no_grad():
        net[-1].weight *= 0.1
    return net
