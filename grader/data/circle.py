"""The lab's 2-D circle task: a disc (class 0) inside a ring (class 1), both centred at (10, 10).

Class 0 points lie at radius 1 +- 1 from the centre, class 1 points at radius 4 +- 1; the angle and the radial
noise are uniform, and each point's class is a fair coin flip, as in the course template's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CENTER = (10.0, 10.0)
RADII = (1.0, 4.0)  # class 0 (disc), class 1 (ring)
RADIAL_NOISE = 1.0


def circle_sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `n` labelled points; the same `seed` always gives the same points. Returns x (n, 2), y (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    phi = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    noise = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * RADIAL_NOISE
    r = torch.tensor(RADII, dtype=torch.float64)[y] + noise
    x = torch.stack([CENTER[0] + r * torch.cos(phi), CENTER[1] + r * torch.sin(phi)], dim=1)
    return x.float(), y


@dataclass(frozen=True)
class CircleData:
    """Training and validation sets, raw and standardized with the training set's mean and std."""

    x_train_raw: torch.Tensor  # (n_train, 2)
    y_train: torch.Tensor  # (n_train,)
    x_val_raw: torch.Tensor  # (n_val, 2)
    y_val: torch.Tensor  # (n_val,)
    mean: torch.Tensor  # (2,)
    std: torch.Tensor  # (2,)

    @classmethod
    def make(cls, n_train: int, n_val: int, seed: int) -> CircleData:
        x_train, y_train = circle_sample(n_train, seed)
        x_val, y_val = circle_sample(n_val, seed + 1_000_003)
        return cls(x_train, y_train, x_val, y_val, x_train.mean(0), x_train.std(0))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @property
    def x_train(self) -> torch.Tensor:
        return self.standardize(self.x_train_raw)

    @property
    def x_val(self) -> torch.Tensor:
        return self.standardize(self.x_val_raw)

    def grid(self, resolution: int, margin: float = 1.0) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
        """A regular grid over the raw data's extent, for decision boundaries: (resolution**2, 2), extent."""
        lo = self.x_train_raw.min(0).values - margin
        hi = self.x_train_raw.max(0).values + margin
        xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
        ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
        return points, (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
