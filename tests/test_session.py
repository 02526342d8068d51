"""Reading a sandbox reply on the trusted side: numbered tensors, malformed meta and bad tensors."""

import numpy as np
import pytest

from grader.checks.init_sanity import model_problems
from grader.sandbox import SandboxReply
from grader.session import BadReply, Run


def run_with(tensors: dict, meta: dict | None = None) -> Run:
    reply = SandboxReply(ok=True, meta=meta or {}, tensors=tensors, failure=None, log_tail="", wall_seconds=0.0)
    return Run("sanity", "init_sanity", {}, reply)


def test_numbered_tensors_are_counted_in_a_row():
    run = run_with({f"z{k}": np.zeros(2, np.float32) for k in (0, 1, 2, 4)})
    assert run.count("z") == 3 and run.count("z", start=1) == 2 and run.count("y") == 0


def test_malformed_meta_is_a_bad_reply_not_a_crash():
    for meta in ({"m0": "not a dict"}, {"m0": {"names": ["ok", "../../etc"]}}, {"m0": {"names": 3}}):
        with pytest.raises(BadReply, match="no valid parameter names"):
            model_problems(run_with({}, meta), 0, "circle_model(None)")


def test_tensors_are_checked_for_shape_and_finite_values():
    run = run_with({"a": np.array([1.0, np.nan], np.float32), "b": np.zeros((2, 3), np.float32)})
    with pytest.raises(BadReply, match="NaN"):
        run.tensor("a")
    with pytest.raises(BadReply, match="shape"):
        run.tensor("b", (2, 4))
    with pytest.raises(BadReply, match="has no 'c'"):
        run.tensor("c")
    assert run.tensor("b", (2, None)).shape == (2, 3)
