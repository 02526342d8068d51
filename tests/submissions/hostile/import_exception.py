"""Hostile: raises an exception from a helper function while the file is being imported."""


def load_settings():
    settings = {"lr": 0.1}
    return settings["epochs"]


EPOCHS = load_settings()
