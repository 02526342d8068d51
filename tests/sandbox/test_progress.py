"""Lab tasks report how far they are while they run; what the child leaves in the progress file is only ever
read as two small numbers."""

import numpy as np

from .helpers import LIMITS, run

SLOW_DEEP = """
import time
from torch import nn


def deep_model(init):
    time.sleep(0.8)
    return nn.Sequential(nn.Linear(2, 2))
"""

FIFO_AT_IMPORT = (
    SLOW_DEEP
    + """
import os

os.mkfifo("progress")
"""
)

INPUTS = {"x": np.ones((8, 2), np.float32), "cotangent": np.ones((8, 2), np.float32)}
PARAMS = {"inits": ["normal", "xavier", "kaiming"], "seed": 0}


def test_progress_is_forwarded_while_the_task_runs(tmp_path):
    sub = tmp_path / "slow.py"
    sub.write_text(SLOW_DEEP)
    seen: list[tuple[int, int]] = []
    reply = run(sub, "deep_stats", params=PARAMS, inputs=INPUTS, progress=lambda d, t: seen.append((d, t)))
    assert reply.ok, reply.failure
    assert seen and all(t == 3 and 0 <= d <= 3 for d, t in seen)
    assert {1, 2} & {d for d, _ in seen}


def test_a_fifo_in_place_of_the_progress_file_blocks_nothing(tmp_path):
    sub = tmp_path / "fifo.py"
    sub.write_text(FIFO_AT_IMPORT)
    seen: list[tuple[int, int]] = []
    reply = run(
        sub, "deep_stats", params=PARAMS, inputs=INPUTS, limits=LIMITS, progress=lambda d, t: seen.append((d, t))
    )
    assert reply.wall_seconds < LIMITS.wall_seconds
    assert all(t == 3 for _, t in seen)
