"""Hostile: crashes the interpreter with a segmentation fault (reads address 0 through ctypes)."""

import ctypes

ctypes.string_at(0)
