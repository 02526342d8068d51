"""Lab tasks report how far they are while they run; what the child leaves in the progress file is only ever
read as two small numbers. The lab's tasks run on rebuilt models without the student's file; the student's code
runs only in the build task, which can write whatever it likes where the progress goes."""

import numpy as np
import torch
from torch import nn

from grader.tasks.local import captured_models

from .helpers import LIMITS, run

FIFO_AT_IMPORT = """
import os
from torch import nn

try:  # the progress file, replaced by a FIFO that nobody writes
    os.remove("progress")
except OSError:
    pass
os.mkfifo("progress")


def circle_model(sigma):
    return nn.Sequential(nn.Linear(2, 2))
"""

NONSENSE_AT_IMPORT = """
import os
from torch import nn

for text in (b"99999999999999999 3", b"-1 -1", b"x y", b"5 0", b"\\xff" * 200, b"7 3 9"):
    try:
        os.pwrite(5, text.ljust(31) + b"\\n", 0)  # the progress descriptor, as lab tasks write it
    except OSError:
        pass


def circle_model(sigma):
    return nn.Sequential(nn.Linear(2, 2))
"""

BUILD = {"models": [{"key": f"circle.s{s}", "factory": "circle_model", "args": [1.0], "seed": s, "input": 2}
                    for s in range(3)]}  # fmt: skip


def slow_runs() -> tuple[dict, dict[str, np.ndarray]]:
    """circle_runs, one model at a time: three runs of a second or so each, each run reported as it starts."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))
    _, model_params, model_inputs = captured_models({"circle": (model, 2)})
    steps = 1500
    runs = [{"key": "circle", "sigma": 1.0, "glorot": False, "seed": s, "raw": False, "grid": False} for s in range(3)]
    params = {"runs": runs, "steps": steps, "lr": 0.1, "log_steps": [0, steps], "val_steps": [0, steps],
              "batched": False, **model_params}  # fmt: skip
    x = np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32)
    inputs = {"x_train": x, "x_train_raw": x, "x_val": x[:20], "x_val_raw": x[:20],
              "y_train": (x[:, 0] > 0).astype(np.int64)}  # fmt: skip
    return params, inputs | {k: v.numpy() for k, v in model_inputs.items()}


def test_progress_is_forwarded_while_the_task_runs():
    params, inputs = slow_runs()
    seen: list[tuple[int, int]] = []
    reply = run(None, "circle_runs", params=params, inputs=inputs, progress=lambda d, t: seen.append((d, t)))
    assert reply.ok, reply.failure
    assert seen and all(t == 3 and 0 <= d <= 3 for d, t in seen)
    assert {1, 2} & {d for d, _ in seen}


def test_a_fifo_in_place_of_the_progress_file_blocks_nothing(tmp_path):
    sub = tmp_path / "fifo.py"
    sub.write_text(FIFO_AT_IMPORT)
    seen: list[tuple[int, int]] = []
    reply = run(sub, "build", params=BUILD, limits=LIMITS, progress=lambda d, t: seen.append((d, t)))
    assert reply.wall_seconds < LIMITS.wall_seconds
    assert reply.ok and sorted(reply.meta["models"]) == ["circle.s0", "circle.s1", "circle.s2"], reply.failure
    assert all(0 <= d <= t for d, t in seen)


def test_nonsense_in_the_progress_file_is_read_as_two_small_numbers_or_not_at_all(tmp_path):
    sub = tmp_path / "nonsense.py"
    sub.write_text(NONSENSE_AT_IMPORT)
    seen: list[tuple[int, int]] = []
    reply = run(sub, "build", params=BUILD, limits=LIMITS, progress=lambda d, t: seen.append((d, t)))
    assert reply.ok, reply.failure
    assert all(isinstance(d, int) and isinstance(t, int) and 0 <= d <= t <= 1_000_000 for d, t in seen), seen
