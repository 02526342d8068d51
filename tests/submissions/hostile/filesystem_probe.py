"""Hostile: tries to read secrets and labels and to write outside /job and /tmp; prints what worked."""

import json
import os

from torch import nn


def attempt(action):
    try:
        result = action()
    except OSError as error:
        return f"denied: {type(error).__name__}"
    return f"ok: {result!r}"[:200]


def write(path):
    with open(path, "w") as handle:
        handle.write("escaped")
    return "written"


def read(path):
    with open(path, "rb") as handle:
        return len(handle.read())


report = {
    "read /etc/shadow": attempt(lambda: read("/etc/shadow")),
    "list /root": attempt(lambda: sorted(os.listdir("/root"))),
    "read /root/.bashrc": attempt(lambda: read("/root/.bashrc")),
    "list /work": attempt(lambda: sorted(os.listdir("/work"))),
    "read /work/main/pyproject.toml": attempt(lambda: read("/work/main/pyproject.toml")),
    "list /home": attempt(lambda: sorted(os.listdir("/home"))),
    "list labels folder": attempt(lambda: sorted(os.listdir("/usr/share/datasets/fashion-mnist"))),
    "read labels": attempt(lambda: read("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")),
    "write /work/main/labgrader-escape": attempt(lambda: write("/work/main/labgrader-escape")),
    "write /etc/labgrader-escape": attempt(lambda: write("/etc/labgrader-escape")),
    "write /usr/labgrader-escape": attempt(lambda: write("/usr/labgrader-escape")),
    "write /labgrader-escape": attempt(lambda: write("/labgrader-escape")),
    "overwrite /job/submission.py": attempt(lambda: write("/job/submission.py")),
    "write /job/scratch": attempt(lambda: write("/job/scratch")),
    "write /tmp/scratch": attempt(lambda: write("/tmp/scratch")),
}
print("FS " + json.dumps(report, sort_keys=True), flush=True)


def circle_model(sigma=None):
    return nn.Linear(2, 2)
