"""The checks' ids and titles in report order, without importing them: the API and the dashboard name checks from
here and so load neither torch nor matplotlib (tests/test_catalog.py keeps it equal to grader.checks.CHECKS)."""

from __future__ import annotations

CATALOG: tuple[tuple[str, str], ...] = (
    ("loss_at_init", "Loss at initialization"),
    ("sigma_sweep", "Part 1: sigma sweep"),
    ("activation_stats", "Part 2: activation statistics of a deep net"),
    ("dropout", "Part 3: dropout"),
    ("init_sanity", "Initialization sanity (makemore E01)"),
    ("fold_batchnorm", "BatchNorm folding (makemore E02)"),
    ("tanh_init", "Tanh network: Kaiming gain 5/3 and BatchNorm (makemore)"),
    ("architecture", "Architectures and inits the lab prescribes"),
    ("training_diagnostics", "Training diagnostics (makemore)"),
)
TITLES: dict[str, str] = dict(CATALOG)
