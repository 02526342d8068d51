"""Hostile: writes its own reply.json and outputs.safetensors claiming success, then exits at once."""

import json
import os

import torch
from safetensors.torch import save_file

save_file({"y": torch.zeros(5, 2)}, "outputs.safetensors")
with open("reply.json", "w") as reply:
    json.dump({"token": "0" * 64, "ok": True, "failure": None, "meta": {"accuracy": 1.0}}, reply)
os._exit(0)
