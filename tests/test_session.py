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


def test_the_mc_curve_is_measured_at_every_small_k_and_a_few_per_decade_up_to_the_budget():
    from grader.session import mc_schedule

    assert mc_schedule(3) == [1, 2, 3]
    ks = mc_schedule(1000)
    assert ks[:20] == list(range(1, 21)) and ks[-1] == 1000 and ks == sorted(set(ks))
    assert {30, 50, 70, 100, 150, 200, 300, 500, 700} <= set(ks) and len(ks) < 40
    assert mc_schedule(100)[-1] == 100 and mc_schedule(25)[-1] == 25


def test_on_a_gpu_the_mc_ensemble_covers_every_validation_image_with_k_up_to_1000():
    from grader.assignment import load_assignment

    a = load_assignment()
    gpu = a.mnist.on_gpu()
    assert (gpu.mc_passes, gpu.mc_subset) == (1000, a.mnist.n_val) == (1000, 10000)
    assert (a.mnist.mc_passes, a.mnist.mc_subset) == (100, 1000), "the CPU budgets stay as they were"
    assert a.mnist.model_copy(update={"gpu": None}).on_gpu() == a.mnist.model_copy(update={"gpu": None})


def test_a_bundle_runs_each_part_and_keeps_a_failure_to_its_own_part(tmp_path, monkeypatch):
    """Small tasks share a child: each part's data comes back under its name, and a part that fails (here: a model
    that was not built) fails alone."""
    import numpy as np
    import torch
    from torch import nn

    from grader.sandbox import SandboxReply
    from grader.session import _part_reply
    from grader.tasks import lab
    from grader.tasks.local import captured_models

    monkeypatch.chdir(tmp_path)  # tasks write their progress file into the working folder
    torch.manual_seed(0)
    layers = [nn.Linear(2, 100), nn.ReLU(), *([nn.Linear(100, 100), nn.ReLU()] * 2), nn.Linear(100, 2)]
    models, params, inputs = captured_models({"deep.kaiming": (nn.Sequential(*layers), 2)})
    x, cotangent = torch.randn(64, 2), torch.randn(64, 2)
    parts = [
        {"name": "deep", "task": "deep_stats", "params": {**params, "inits": ["kaiming"], "seed": 0}},
        {"name": "fold", "task": "fold_batchnorm", "params": {**params, "device": "cpu"}},
    ]
    bundle_inputs = {**inputs, "in-deep/x": x, "in-deep/cotangent": cotangent, "in-fold/x": torch.randn(8, 4)}
    meta, out = lab.bundle(models, {"parts": parts, "device": "cpu"}, bundle_inputs)
    reply = SandboxReply(ok=True, meta=meta, tensors={k: np.asarray(v) for k, v in out.items()}, failure=None,
                         log_tail="", wall_seconds=1.0)  # fmt: skip
    deep, fold = _part_reply(reply, "deep"), _part_reply(reply, "fold")
    assert deep.ok and deep.meta == {"kaiming": {"layers": 4}} and deep.tensors["kaiming.stats"].shape == (4, 6)
    assert set(deep.tensors) == {
        "kaiming.stats",
        "kaiming.logits",
        *(f"kaiming.{p}{k}" for p in "wb" for k in range(4)),
    }
    assert not fold.ok and fold.failure.kind == "contract" and "was not built" in fold.failure.message
    # a child that failed as a whole (a limit) fails every part with its own failure
    broken = SandboxReply(ok=False, meta={}, tensors={}, failure=fold.failure, log_tail="", wall_seconds=1.0)
    assert _part_reply(broken, "deep").failure is fold.failure
