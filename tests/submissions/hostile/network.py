"""Hostile: tries to reach a service on the grading host (Redis on 127.0.0.1:6379) and the internet."""

import socket

from torch import nn

for host, port in (("127.0.0.1", 6379), ("1.1.1.1", 53)):
    try:
        with socket.create_connection((host, port), timeout=2):
            print(f"NETWORK {host}:{port} connected", flush=True)
    except OSError as error:
        print(f"NETWORK {host}:{port} blocked ({error})", flush=True)


def circle_model(sigma=None):
    return nn.Linear(2, 2)
