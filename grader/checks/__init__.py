"""The lab's checks, in report order. Each takes the session's runs and the assignment and returns a
CheckResult; none runs student code."""

from grader.checks import (
    activation_stats,
    architecture,
    dropout,
    fold_batchnorm,
    init_sanity,
    loss_at_init,
    sigma_sweep,
    training_diagnostics,
)
from grader.checks.base import CheckSpec

CHECKS: list[CheckSpec] = [
    CheckSpec(loss_at_init.ID, loss_at_init.TITLE, ("circle_model",), loss_at_init.check),
    CheckSpec(sigma_sweep.ID, sigma_sweep.TITLE, ("circle_model",), sigma_sweep.check),
    CheckSpec(activation_stats.ID, activation_stats.TITLE, ("deep_model",), activation_stats.check),
    CheckSpec(dropout.ID, dropout.TITLE, ("mnist_model",), dropout.check),
    CheckSpec(init_sanity.ID, init_sanity.TITLE, (), init_sanity.check),
    CheckSpec(fold_batchnorm.ID, fold_batchnorm.TITLE, ("fold_batchnorm",), fold_batchnorm.check),
    CheckSpec(architecture.ID, architecture.TITLE, (), architecture.check),
    CheckSpec(training_diagnostics.ID, training_diagnostics.TITLE, ("mnist_model",), training_diagnostics.check),
]

__all__ = ["CHECKS", "CheckSpec"]
