"""The BatchNorm-folding check's ground truth: the grader's teacher model is far from BatchNorm's defaults,
and the reference fold agrees with torch.nn.utils.fusion.fuse_linear_bn_eval, the independent reference."""

import copy
import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from grader.assignment import load_assignment
from grader.batchnorm_teacher import inputs, teacher_model

ROOT = Path(__file__).resolve().parents[2]


def reference():
    spec = importlib.util.spec_from_file_location("reference_solution", ROOT / "examples" / "reference_solution.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_statistics_are_far_from_defaults():
    model, spec = teacher_model(0)
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    assert any(not b.affine for b in bns) and any(b.eps != 1e-5 for b in bns)
    assert any(isinstance(m, nn.Linear) and m.bias is None for m in model)
    assert isinstance(model[-1], nn.BatchNorm1d)
    for b in bns:
        assert (b.running_var - 1).abs().mean() > 0.5
        if b.affine:
            assert (b.weight - 1).abs().mean() > 0.1 and b.bias.abs().mean() > 0.1
    assert bns[0].running_mean.abs().mean() > 1.0


def test_reference_fold_matches_torch_fusion_and_the_original():
    model, _ = teacher_model(0)
    x = inputs(256, seed=5)
    folded = reference().fold_batchnorm(copy.deepcopy(model))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    with torch.no_grad():
        expected = model(x)
        tolerance = load_assignment().batchnorm.tolerance  # all in float32 here, still well inside it
        assert (folded(x) - expected).abs().max() <= tolerance * max(1.0, expected.abs().max())
    layers = list(model)
    fused_layers = []
    i = 0
    while i < len(layers):
        if isinstance(layers[i], nn.Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
            lin, bn = copy.deepcopy(layers[i]), copy.deepcopy(layers[i + 1])
            if not bn.affine:  # torch's fusion needs gamma and beta: the identity affine is the same BatchNorm
                bn = nn.BatchNorm1d(bn.num_features, eps=bn.eps).eval()
                bn.running_mean.copy_(layers[i + 1].running_mean)
                bn.running_var.copy_(layers[i + 1].running_var)
            if lin.bias is None:
                lin = nn.Linear(lin.in_features, lin.out_features)
                lin.weight.data.copy_(layers[i].weight)
                lin.bias.data.zero_()
            fused_layers.append(fuse_linear_bn_eval(lin.eval(), bn))
            i += 2
        else:
            fused_layers.append(layers[i])
            i += 1
    torch_folded = [m for m in fused_layers if isinstance(m, nn.Linear)]
    ours = [m for m in folded if isinstance(m, nn.Linear)]
    for a, b in zip(ours, torch_folded, strict=True):
        assert torch.allclose(a.weight, b.weight, rtol=1e-5, atol=1e-6)
        assert torch.allclose(a.bias, b.bias, rtol=1e-5, atol=1e-6)
