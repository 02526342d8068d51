"""Style: custom nn.Module subclasses with layers as attributes and an explicit forward; inits through the
torch.nn.init functions (normal_, xavier_normal_, kaiming_normal_(nonlinearity="relu"), zeros_) via
self.apply(self.init_weights) as the lab suggests; Glorot for the recommended circle init with a small last
layer; nn.Identity in place of dropout when it is off; fold_batchnorm with 1 / torch.sqrt."""

import torch
import torch.nn.functional as F
from torch import nn

SIGMAS = {"small": 0.08, "good": 1.0, "big": 6.0}


class CircleNet(nn.Module):
    def __init__(self, sigma=None):
        super().__init__()
        self.fc1 = nn.Linear(2, 6)
        self.fc2 = nn.Linear(6, 3)
        self.fc3 = nn.Linear(3, 2)
        self.sigma = sigma
        self.apply(self.init_weights)

    def init_weights(self, m):
        if isinstance(m, nn.Linear):
            if self.sigma is None:
                nn.init.xavier_normal_(m.weight)
                if m is self.fc3:
                    nn.init.xavier_normal_(m.weight, gain=0.1)  # small logits at init
            else:
                nn.init.normal_(m.weight, 0, self.sigma)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class DeepNet(nn.Module):
    def __init__(self, init, depth=20, width=100):
        super().__init__()
        self.depth = depth
        self.init = init
        self.add_module("fc0", nn.Linear(2, width))
        for i in range(1, depth - 1):
            self.add_module(f"fc{i}", nn.Linear(width, width))
        self.add_module(f"fc{depth - 1}", nn.Linear(width, 2))
        self.apply(self.init_weights)

    def init_weights(self, m):
        if not isinstance(m, nn.Linear):
            return
        if self.init == "normal":
            nn.init.normal_(m.weight, mean=0.0, std=1.0)
        elif self.init == "xavier":
            nn.init.xavier_normal_(m.weight)
        elif self.init == "kaiming":
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            raise ValueError(f"unknown init: {self.init}")
        nn.init.zeros_(m.bias)

    def forward(self, x):
        for i in range(self.depth):
            x = getattr(self, f"fc{i}")(x)
            if i < self.depth - 1:
                x = F.relu(x)
        return x


class MnistNet(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.fc1 = nn.Linear(784, 800)
        self.fc2 = nn.Linear(800, 800)
        self.fc3 = nn.Linear(800, 10)
        if dropout:
            self.drop_in = nn.Dropout(p=0.2)
            self.drop1 = nn.Dropout(p=0.5)
            self.drop2 = nn.Dropout(p=0.5)
        else:
            self.drop_in = nn.Identity()
            self.drop1 = nn.Identity()
            self.drop2 = nn.Identity()
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.normal_(fc.weight, 0.0, 0.1)
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        x = self.drop_in(x)
        x = self.drop1(F.relu(self.fc1(x)))
        x = self.drop2(F.relu(self.fc2(x)))
        return self.fc3(x)


def circle_model(sigma=None):
    return CircleNet(sigma)


def deep_model(init):
    return DeepNet(init)


def mnist_model(dropout):
    return MnistNet(dropout)


def fold_batchnorm(model):
    out = []
    pending = None
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.BatchNorm1d):
                assert pending is not None, "BatchNorm without a Linear before it"
                std = torch.sqrt(layer.running_var + layer.eps)
                if layer.affine:
                    gamma, beta = layer.weight, layer.bias
                else:
                    gamma = torch.ones(layer.num_features)
                    beta = torch.zeros(layer.num_features)
                scale = gamma / std
                w = pending.weight * scale[:, None]
                if pending.bias is None:
                    b = -layer.running_mean * scale + beta
                else:
                    b = (pending.bias - layer.running_mean) * scale + beta
                new = nn.Linear(pending.in_features, pending.out_features)
                new.weight.copy_(w)
                new.bias.copy_(b)
                out.append(new)
                pending = None
            else:
                if pending is not None:
                    out.append(pending)
                    pending = None
                if isinstance(layer, nn.Linear):
                    pending = layer
                else:
                    out.append(layer)
        if pending is not None:
            out.append(pending)
    return nn.Sequential(*out)


class TanhNet(nn.Module):
    """makemore's MLP: five hidden layers of 100 tanh units, BatchNorm1d before each tanh if asked."""

    def __init__(self, batchnorm):
        super().__init__()
        self.fc1 = nn.Linear(784, 100, bias=not batchnorm)
        self.fc2 = nn.Linear(100, 100, bias=not batchnorm)
        self.fc3 = nn.Linear(100, 100, bias=not batchnorm)
        self.fc4 = nn.Linear(100, 100, bias=not batchnorm)
        self.fc5 = nn.Linear(100, 100, bias=not batchnorm)
        self.out = nn.Linear(100, 10)
        if batchnorm:
            self.bn1, self.bn2, self.bn3, self.bn4, self.bn5 = (nn.BatchNorm1d(100) for _ in range(5))
        else:
            self.bn1, self.bn2, self.bn3, self.bn4, self.bn5 = (nn.Identity() for _ in range(5))
        self.apply(self.init_weights)

    def init_weights(self, m):
        if isinstance(m, nn.Linear) and m is not self.out:
            std = nn.init.calculate_gain("tanh") / m.in_features**0.5
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = torch.tanh(self.bn1(self.fc1(x)))
        x = torch.tanh(self.bn2(self.fc2(x)))
        x = torch.tanh(self.bn3(self.fc3(x)))
        x = torch.tanh(self.bn4(self.fc4(x)))
        x = torch.tanh(self.bn5(self.fc5(x)))
        return self.out(x)


def tanh_model(batchnorm=False):
    return TanhNet(batchnorm)
