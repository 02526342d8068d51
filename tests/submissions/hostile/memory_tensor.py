"""Hostile: allocates a 400 GB torch tensor at import (memory bomb)."""

import torch

huge = torch.ones(100_000_000_000)
