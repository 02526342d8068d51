"""The fold check names the mistake of a wrong folded layer (makemore E02)."""

import pytest

from grader.batchnorm_teacher import teacher_model
from grader.checks.fold_batchnorm import MATCH, _folds, _pairs, diagnose
from grader.sandbox import SandboxReply
from grader.session import Run

TEACHER, _ = teacher_model(0)


def run_with(choice: str) -> tuple[Run, list[dict]]:
    """A fold run whose every layer is folded right, except that each layer uses `choice` where it exists."""
    tensors, layers = {}, []
    for lin, bn in _pairs(TEACHER):
        folds = _folds(lin, bn)
        w, b = folds.get(choice, folds["right"])
        k = len(layers)
        tensors[f"layer{k}.weight"], tensors[f"layer{k}.bias"] = w.float().numpy(), b.float().numpy()
        layers += [{"type": "Linear", "torch": True}, {"type": "Tanh", "torch": True}]
    reply = SandboxReply(ok=True, meta={"layers": layers}, tensors=tensors, failure=None, log_tail="", wall_seconds=0)
    return Run("fold", "fold_batchnorm", {}, reply), layers


def test_a_right_fold_has_no_mistake():
    run, layers = run_with("right")
    assert diagnose(TEACHER, run, layers) == []


@pytest.mark.parametrize(
    "mistake",
    [m for m in _folds(*_pairs(TEACHER)[0]) if m != "right"] + ["the running mean is not subtracted"],
)
def test_each_mistake_is_named(mistake):
    run, layers = run_with(mistake)
    found = diagnose(TEACHER, run, layers)
    assert found and all(mistake in f for f in found), found
    assert found[0].startswith("Layer 1 (Linear 8 -> 32, no bias + BatchNorm1d eps=0.001)")


def test_too_few_layers_is_said():
    run, layers = run_with("right")
    assert "needs one folded Linear per pair" in diagnose(TEACHER, run, layers[:2])[0]


def _distance(w, b, fw, fb) -> float:
    """The distance _close compares with MATCH: the largest weight or bias difference, relative to the fold's
    largest weight or bias (at least 1)."""
    scale = max(1.0, float(fw.abs().max()), float(fb.abs().max()))
    return max(float((w - fw).abs().max()), float((b - fb).abs().max())) / scale


def test_the_match_threshold_separates_float32_folds_from_mistakes():
    """A right fold rounded to float32 is far inside MATCH; every mistake that changes a layer is far outside it,
    down to the smallest (eps = 1e-3 missing from the first layer: about 1.1e-4 on seed 0)."""
    for lin, bn in _pairs(TEACHER):
        folds = _folds(lin, bn)
        fw, fb = folds["right"]
        assert _distance(fw.float().double(), fb.float().double(), fw, fb) < MATCH / 20
        for why, (mw, mb) in folds.items():
            d = _distance(mw, mb, fw, fb)
            if why == "right" or d == 0:  # gamma and beta of an affine=False BatchNorm: no mistake to make
                continue
            if bn.eps <= 1e-5 and why.startswith("eps"):  # too small to matter there: moves outputs by ~1e-6
                continue
            assert d > 5 * MATCH, (why, bn, d)
