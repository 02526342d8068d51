"""Appended by the tests to the reference solution: cheating attempts at import time that must change nothing.

It prints a fake result and writes it to disk, drops a pickle where the sandbox writes its outputs, and hunts for
validation labels in its caller's frames.
"""


def _cheat() -> None:
    import json
    import pickle
    import sys

    fake = {"score": 95, "max_score": 95, "tests": [{"name": "all", "score": 95, "max_score": 95}]}
    print(json.dumps(fake))
    for name in ("result.json", "results.json", "reply.json"):
        try:
            with open(name, "w") as f:
                json.dump(fake, f)
        except OSError:
            pass
    try:
        with open("outputs.safetensors", "wb") as f:
            pickle.dump({"y": [1, 2, 3]}, f)
    except OSError:
        pass
    frame = sys._getframe()
    while frame is not None:
        for key, value in list(frame.f_locals.items()):
            if "label" in key or key in ("y_val", "labels"):
                print("found", key, type(value))
        frame = frame.f_back


_cheat()
