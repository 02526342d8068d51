"""Hostile: prints to stdout forever at import (huge output)."""

line = "spam " * 2000
while True:
    print(line)
