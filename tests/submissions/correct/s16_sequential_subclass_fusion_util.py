"""Style: models are subclasses of nn.Sequential itself, initialised by looping over named_parameters()
(names ending in "weight" / "bias"); dropout by hand with torch.bernoulli on a keep-probability tensor, rescaled
by 1 / (1 - p) (inverted), in an nn.Module; fold_batchnorm uses PyTorch's own
torch.nn.utils.fusion.fuse_linear_bn_weights, passing gamma = 1 and beta = 0 for affine=False BatchNorms."""

import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_weights

SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


class BernoulliDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        keep = torch.bernoulli(torch.full_like(x, 1 - self.p))
        return x * keep / (1 - self.p)


class CircleNet(nn.Sequential):
    def __init__(self, sigma):
        super().__init__(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("weight"):
                    if sigma is None:
                        std = math.sqrt(2.0 / p.shape[1])
                        if name.startswith("4."):
                            std *= 0.01  # output layer
                    else:
                        std = sigma
                    p.normal_(0.0, std)
                elif name.endswith("bias"):
                    p.zero_()


class DeepNet(nn.Sequential):
    def __init__(self, init):
        dims = [2] + [100] * 19 + [2]
        mods = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        super().__init__(*mods[:-1])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                    continue
                fan_out, fan_in = p.shape
                if init == "normal":
                    p.normal_(0.0, 1.0)
                elif init == "xavier":
                    p.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
                elif init == "kaiming":
                    p.normal_(0.0, math.sqrt(2.0 / fan_in))
                else:
                    raise ValueError(init)


class MnistNet(nn.Sequential):
    def __init__(self, dropout):
        mods = [nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(), nn.Linear(800, 10)]
        if dropout:
            mods.insert(4, BernoulliDropout(0.5))
            mods.insert(2, BernoulliDropout(0.5))
            mods.insert(0, BernoulliDropout(0.2))
        super().__init__(*mods)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("weight"):
                    p.normal_(0.0, 0.1)
                else:
                    p.zero_()


def circle_model(sigma=None):
    return CircleNet(sigma)


def deep_model(init):
    return DeepNet(init)


def mnist_model(dropout):
    return MnistNet(dropout)


@torch.no_grad()
def fold_batchnorm(model):
    layers = list(model)
    out = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm1d):
            lin = out.pop()
            gamma = layer.weight if layer.affine else torch.ones_like(layer.running_var)
            beta = layer.bias if layer.affine else torch.zeros_like(layer.running_mean)
            w, b = fuse_linear_bn_weights(
                lin.weight, lin.bias, layer.running_mean, layer.running_var, layer.eps, gamma, beta
            )
            fused = nn.Linear(lin.in_features, lin.out_features)
            fused.weight = w
            fused.bias = b
            out.append(fused)
        else:
            out.append(layer)
    return nn.Sequential(*out)


class TanhNet(nn.Sequential):
    def __init__(self, batchnorm):
        layers = []
        for fan_in in (784, 100, 100, 100, 100):
            layers.append(nn.Linear(fan_in, 100, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(100))
            layers.append(nn.Tanh())
        layers.append(nn.Linear(100, 10))
        super().__init__(*layers)
        last = f"{len(self) - 1}."
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                std = (5 / 3) / math.sqrt(p.shape[1]) if not name.startswith(last) else 0.01
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias") and p.shape[0] == 100 and not batchnorm:
                nn.init.zeros_(p)


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
