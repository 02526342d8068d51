"""Hostile: every model factory sleeps for an hour (it uses no CPU, so no CPU budget stops it)."""

import time


def circle_model(sigma=None):
    time.sleep(3600)


def deep_model(init="normal"):
    time.sleep(3600)


def mnist_model(dropout=False):
    time.sleep(3600)
