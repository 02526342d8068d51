import math

from grader.gradescope import to_gradescope
from grader.result import CheckResult, Item, Series


def test_series_are_rounded_and_non_finite_values_become_null():
    s = Series(name="curve", x=[0, 1], y=[0.123456789, math.nan], values=[[math.inf, 2.000001234]])
    assert s.y == [0.12346, None] and s.values == [[None, 2.0]]
    assert "NaN" not in s.model_dump_json()


def test_gradescope_output_lists_failed_items_and_hint(reference_fast):
    failing = CheckResult(
        id="dropout", title="Part 3: dropout", status="failed", score=21.0, max_score=25.0, message="Rates are off.",
        hint="Use nn.Dropout.", items=[Item(id="input_rate", title="20% on the input", passed=False, points=0,
                                             max_points=4, detail="No dropout on the input.")],
    )  # fmt: skip
    result = reference_fast.model_copy(update={"checks": [failing], "score": 21.0, "max_score": 25.0})
    out = to_gradescope(result)
    assert out["score"] == 21.0
    test = out["tests"][0]
    assert test["status"] == "failed" and test["max_score"] == 25.0
    assert "No dropout on the input." in test["output"] and "Hint: Use nn.Dropout." in test["output"]
