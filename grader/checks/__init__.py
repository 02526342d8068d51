"""The lab's checks, in report order. Each is one unit (a CheckSpec, its module's SPEC): the models it has built,
the runs it starts, how it scores them, and what the report says and shows; none runs student code. Adding a
check: docs/checks.md."""

from grader.checks import (
    activation_stats,
    architecture,
    dropout,
    fold_batchnorm,
    init_sanity,
    loss_at_init,
    sigma_sweep,
    tanh_init,
    training_diagnostics,
)
from grader.checks.base import CheckSpec

CHECKS: list[CheckSpec] = [
    loss_at_init.SPEC,
    sigma_sweep.SPEC,
    activation_stats.SPEC,
    dropout.SPEC,
    init_sanity.SPEC,
    fold_batchnorm.SPEC,
    tanh_init.SPEC,
    architecture.SPEC,
    training_diagnostics.SPEC,
]

__all__ = ["CHECKS", "CheckSpec"]
