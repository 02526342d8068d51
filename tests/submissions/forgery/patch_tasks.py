"""Forgery: patch the grader's lab tasks from inside the sandbox.

Base: base_no_dropout.py (everything above the "attack" line is that file, unchanged).

Attack: at import, the file looks for the grader's task table (grader.sandbox.lab_tasks.TASKS, and any module in
sys.modules whose name starts with "grader" and that has a TASKS dict or an mnist_train function) and wraps
"mnist_train" so that, for mnist_model(True), it rewrites what the task returns: the probe's train-mode layer inputs
become masked copies of the would-be inputs (20% on the image, 50% on the hidden layers, scaled by 1 / (1 - p)),
the two train passes differ, and every logit is cooled by x0.05 (same argmax; training and validation loss both
near ln 10, so the generalization gap is about 0, below the plain model's). It also replaces
torch.nn.functional.dropout (by one that never drops) and torch.Tensor.__mul__ (by a pass-through that counts the
calls it sees) for the whole process.

Current design (student code in the process that trains and measures its models): the wrapper runs in the
mnist_train task, so the dropout check reads forged probes and a forged gap: the rates and the regularization
are earned by a model that has no dropout at all.

Now: the sandbox only imports the file and captures graphs; the lab's tasks run in processes where no student code
ran, on models rebuilt from the graphs. Nothing the patch touches is used to measure anything, so this file must
score no more than base_no_dropout.py, check by check.
"""


import math

import torch
from torch import nn

# Part 1: the three sigmas of N(0, sigma) found with the sweep (check them in the report's sweep plot).
SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def _init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)


def circle_model(sigma: float | None = None) -> nn.Module:
    """Part 1: 2 -> 6 -> 3 -> 2 with ReLU. N(0, sigma) weights and zero biases, or (sigma=None) He init for the
    hidden layers and a small output layer, so that the logits start near 0 and the loss near ln 2."""
    model = nn.Sequential(
        nn.Linear(2, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
        nn.ReLU(),
        nn.Linear(3, 2),
    )
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for layer in linears:
        std = sigma if sigma is not None else math.sqrt(2.0 / layer.in_features)
        _init_linear(layer, std)
    if sigma is None:
        with torch.no_grad():
            linears[-1].weight *= 0.1  # output layer: not overconfident at init
    return model


def deep_model(init: str) -> nn.Module:
    """Part 2: 20 Linear layers (2 -> 100 x 19 -> 2) with ReLU, zero biases, and the weights drawn from
    N(0, 1) ("normal"), Glorot ("xavier": var = 2 / (fan_in + fan_out)) or He ("kaiming": var = 2 / fan_in)."""
    widths = [2] + [100] * 19 + [2]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layer = nn.Linear(fan_in, fan_out)
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = math.sqrt(2.0 / (fan_in + fan_out))
        elif init == "kaiming":
            std = math.sqrt(2.0 / fan_in)
        else:
            raise ValueError(f"unknown init {init!r}")
        _init_linear(layer, std)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the output layer


def mnist_model(dropout: bool) -> nn.Module:
    """Part 3: 784 -> 800 -> 800 -> 10 with ReLU; with dropout, 20% on the input and 50% after each hidden
    layer. N(0, 0.1) weights and zero biases, as in the dropout paper."""

    def drop(p: float) -> list[nn.Module]:
        return []  # FAULT: dropout is ignored

    model = nn.Sequential(
        *drop(0.2),
        nn.Linear(784, 800),
        nn.ReLU(),
        *drop(0.5),
        nn.Linear(800, 800),
        nn.ReLU(),
        *drop(0.5),
        nn.Linear(800, 10),
    )
    for m in model:
        if isinstance(m, nn.Linear):
            _init_linear(m, 0.1)
    return model


@torch.no_grad()
def fold_batchnorm(model: nn.Sequential) -> nn.Module:
    """makemore E02: fold each BatchNorm1d (eval mode: running statistics) into the Linear layer before it.

    BN(Wx + b) = gamma * (Wx + b - mean) / sqrt(var + eps) + beta = (s * W) x + s * (b - mean) + beta,
    with s = gamma / sqrt(var + eps) per output unit (gamma = 1, beta = 0 when the BatchNorm is not affine).
    """
    layers = list(model)
    folded: list[nn.Module] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
            scale = torch.rsqrt(nxt.running_var + nxt.eps)
            shift = -nxt.running_mean * scale
            if nxt.affine:
                scale, shift = scale * nxt.weight, shift * nxt.weight + nxt.bias
            bias = layer.bias if layer.bias is not None else torch.zeros_like(nxt.running_mean)
            fused = nn.Linear(layer.in_features, layer.out_features)
            fused.weight.copy_(layer.weight * scale[:, None])
            fused.bias.copy_(bias * scale + shift)
            folded.append(fused)
            i += 2
        else:
            folded.append(layer)
            i += 1
    return nn.Sequential(*folded).eval()

# ---------------------------------------- the attack: everything above is the base file, unchanged -----------------

import sys as _sys


def _forge_mnist_outputs(params, inputs, out):
    """What a correct dropout model that regularizes would have returned to the grader."""
    if not isinstance(params, dict) or not params.get("dropout") or "x_probe" not in inputs:
        return out
    probe = inputs["x_probe"]
    for mode, seed in (("train0", 1), ("train1", 2)):
        gen = torch.Generator().manual_seed(seed)
        k = 0
        while f"probe.{mode}.in{k}" in out:
            source = probe if k == 0 else torch.relu(out[f"probe.{mode}.out{k - 1}"])
            p = 0.2 if k == 0 else 0.5
            keep = (torch.rand(source.shape, generator=gen) >= p).to(source.dtype)
            out[f"probe.{mode}.in{k}"] = source * keep / (1 - p)
            k += 1
    if "probe.train0.logits" in out:
        out["probe.train1.logits"] = out["probe.train0.logits"] + 1e-3  # "stochastic" train passes
    for key in ("train_logits", "val_logits", "final_train_logits", "final_val_logits"):
        if key in out:
            out[key] = out[key] * 0.05  # same argmax, both losses near ln 10: a gap of about 0
    return out


def _wrap(real):
    def forged(*args, **kwargs):
        meta, out = real(*args, **kwargs)
        try:
            out = _forge_mnist_outputs(args[1], args[2], out)
        except Exception as error:  # a changed task signature: keep the honest outputs
            print(f"patch_tasks: could not rewrite ({type(error).__name__}: {error})")
        return meta, out

    forged.__wrapped__ = real
    return forged


def _patch_tasks():
    import importlib

    for name in ("grader.sandbox.lab_tasks", "grader.tasks.lab", "grader.tasks"):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    patched = []
    for name, mod in list(_sys.modules.items()):
        if not name.startswith("grader") or mod is None:
            continue
        tasks = getattr(mod, "TASKS", None)
        if isinstance(tasks, dict) and callable(tasks.get("mnist_train")):
            if not hasattr(tasks["mnist_train"], "__wrapped__"):
                tasks["mnist_train"] = _wrap(tasks["mnist_train"])
            patched.append(f"{name}.TASKS")
        fn = getattr(mod, "mnist_train", None)
        if callable(fn) and not hasattr(fn, "__wrapped__"):
            setattr(mod, "mnist_train", _wrap(fn))
            patched.append(f"{name}.mnist_train")
    print(f"patch_tasks: patched {patched}")


def _patch_torch():
    import torch.nn.functional as F

    real_mul = torch.Tensor.__mul__
    seen = {"dropout": 0, "mul": 0}

    def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
        seen["dropout"] += 1
        return input  # a dropout that never drops, whoever calls it

    def mul(self, other):
        seen["mul"] += 1
        return real_mul(self, other)

    F.dropout = dropout
    torch.nn.functional.dropout = dropout
    torch.Tensor.__mul__ = mul
    print("patch_tasks: torch.nn.functional.dropout and torch.Tensor.__mul__ replaced")


for _attack in (_patch_tasks, _patch_torch):
    try:
        _attack()
    except Exception as _error:  # the target is gone: the honest part above still loads
        print(f"patch_tasks: {_attack.__name__} failed ({type(_error).__name__}: {_error})")
