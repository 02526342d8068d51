"""Hostile: ends the process with os._exit(7) at import, bypassing every Python exception handler."""

import os

os._exit(7)
