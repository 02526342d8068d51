"""Hostile: writes its own reply and outputs claiming success, both as files in its folder and to the descriptors
the grader's child writes its reply to, then exits at once."""

import json
import os

import torch
from safetensors.torch import save, save_file

forged = json.dumps({"token": "0" * 64, "ok": True, "failure": None, "meta": {"accuracy": 1.0}}).encode()
save_file({"y": torch.zeros(5, 2)}, "outputs.safetensors")
with open("reply.json", "wb") as reply:
    reply.write(forged)
os.write(4, save({"y": torch.zeros(5, 2)}))
os.write(3, forged)
os._exit(0)
