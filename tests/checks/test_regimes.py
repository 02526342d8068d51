import math

from grader.assignment import load_assignment
from grader.checks.circle import classify

A = load_assignment()
LN2 = math.log(2)
STEPS = list(range(0, 1001, 5))


def test_regime_rule():
    assert classify(A, LN2, [LN2] * 10, STEPS, 0.99, escape_step=40) == "good"
    assert classify(A, LN2, [LN2] * 10, STEPS, 0.99, escape_step=450) == "small"
    assert classify(A, 40.0, [1.0] * 10, STEPS, 0.80, escape_step=30) == "big"
    # an overconfident start that never converges is not the lab's "big": at chance level, or a loss that never fell
    assert classify(A, 40.0, [40.0, 3.0, 1.0], STEPS, 0.52, escape_step=None) == "chaotic"
    assert classify(A, 40.0, [40.0, 45.0, 41.0], STEPS, 0.65, escape_step=None) == "chaotic"
    assert classify(A, LN2, [LN2] * 10, STEPS, 0.50, escape_step=None) == "stuck"
    assert classify(A, LN2, [LN2] * 10, STEPS, 0.85, escape_step=100) == "poor"
    assert classify(A, LN2, [LN2, float("nan")], STEPS, 0.5, escape_step=None) == "diverged"
