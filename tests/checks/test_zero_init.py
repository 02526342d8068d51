"""makemore E01 on the student's own network: circle_model(0.0) starts at zero and only its output bias learns.

The models are written the way students write them, captured and rebuilt in this process (as the grading does),
trained by the grader's own task, and scored by the check."""

import pytest
import torch
from torch import nn

from grader.assignment import load_assignment
from grader.checks.init_sanity import zero_init_item
from grader.data import CircleData
from grader.sandbox import SandboxReply
from grader.session import Run
from grader.tasks.lab import init_sanity
from grader.tasks.local import captured_models

A = load_assignment()
DATA = CircleData.make(A.circle.n_train, A.circle.n_val, A.seed)


class Net(nn.Module):
    """The lab's 2-6-3-2 ReLU network; `test` is how the student tells a given sigma from None."""

    def __init__(self, sigma, test="is None", bias=True):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 6, bias=bias), nn.ReLU(), nn.Linear(6, 3, bias=bias), nn.ReLU(),
                                    nn.Linear(3, 2, bias=bias))  # fmt: skip
        given = sigma is not None if test == "is None" else bool(sigma)  # `if sigma:` treats 0 like None
        for m in self.layers:
            if isinstance(m, nn.Linear):
                if given:
                    nn.init.normal_(m.weight, 0.0, sigma)
                else:
                    nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.layers(x)


def scored(model: nn.Module):
    torch.manual_seed(0)
    key = "circle.zero.s0"
    models, params, inputs = captured_models({key: (model, 2)})
    spec = {"key": key, "factory": "circle_model", "args": [0.0], "data": "circle", "n_classes": 2,
            "train_steps": A.sanity.zero_steps}  # fmt: skip
    params |= {"models": [spec], "steps": A.sanity.steps, "lr": A.sanity.lr, "seed": 0}
    meta, tensors = init_sanity(models, params, inputs | {"circle_x": DATA.x_train, "circle_y": DATA.y_train})
    reply = SandboxReply(ok=True, meta=meta, tensors={k: v.numpy() for k, v in tensors.items()}, failure=None,
                         log_tail="", wall_seconds=0)  # fmt: skip
    return zero_init_item(Run("sanity", "init_sanity", params, reply), A, DATA.y_train)


def test_all_zero_weights_train_only_the_output_bias():
    result, metrics = scored(Net(0.0))
    assert result.passed and result.points == result.max_points > 0, result.detail
    assert metrics["changed"] == ["layers.4.bias"] and "only layers.4.bias has changed" in result.detail
    assert metrics["accuracy"] == pytest.approx(metrics["majority"], abs=0.02)


def test_if_sigma_treats_zero_like_none_and_loses_the_item():
    result, _ = scored(Net(0.0, test="truthy"))
    assert not result.passed and result.points == 0
    assert "does not start at zero" in result.detail and "if sigma is None:" in result.detail


def test_an_output_layer_without_bias_learns_nothing_and_is_named():
    result, metrics = scored(Net(0.0, bias=False))
    assert not result.passed and metrics["changed"] == []
    assert "changed nothing" in result.detail and "has none" in result.detail
