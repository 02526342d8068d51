"""The whitelist: every torch operation a captured graph may use, and how the trusted side runs it.

Operations are named as the capture sees them: ``F.<name>`` (torch.nn.functional), ``torch.<name>`` and
``Tensor.<name>`` (methods and attributes such as ``Tensor.T``). In-place forms (``relu_``, ``add_``,
``__iadd__``, ``inplace=True``, ``copy_``, ``lerp_``) run out of place on the trusted side, and one that writes a
buffer of the model (running statistics) copies its result into the buffer, as does a buffer that forward
reassigns (``self.running_mean = ...``, a program's ``assign``); ``empty``/``empty_like`` give zeros. The list
is broad enough for every honest way of writing the lab's models (layers or functional calls, hand-written
dropout with random masks, batch norm by hand or as a layer); anything else fails with the message in ``HINTS``
or a general one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Op = Callable[..., torch.Tensor]

#: Operations that create a tensor from sizes only (the trusted side puts it on the model's device).
FACTORIES = frozenset({"torch.rand", "torch.randn", "torch.ones", "torch.zeros", "torch.empty", "torch.full"})
#: Operations whose result depends on the random state (never the same on two passes).
RANDOM = frozenset(
    {
        "F.dropout", "torch.dropout", "torch.rand_like", "torch.randn_like", "torch.rand", "torch.randn",
        "torch.bernoulli", "Tensor.bernoulli", "Tensor.uniform", "Tensor.normal",
    }
)  # fmt: skip
#: The most elements a tensor created inside forward may have (the model's input is at most a batch of images).
MAX_CREATED = 50_000_000

_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "bool": torch.bool, "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8,
}  # fmt: skip


def dtype_of(name: str) -> torch.dtype:
    return _DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str | None:
    name = str(dtype).removeprefix("torch.")
    return name if name in _DTYPES else None


def _bernoulli_(x: torch.Tensor, p: Any = 0.5, **_: Any) -> torch.Tensor:
    probs = p if isinstance(p, torch.Tensor) else torch.full_like(x, float(p), dtype=torch.float32)
    return torch.bernoulli(probs.expand_as(x).to(torch.float32)).to(x.dtype)


def _uniform_(x: torch.Tensor, a: float = 0.0, b: float = 1.0, **kw: Any) -> torch.Tensor:
    a, b = kw.get("from", a), kw.get("to", b)
    return torch.rand_like(x) * (b - a) + a


def _normal_(x: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return torch.randn_like(x) * std + mean


def _to(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Tensor.to with a dtype only: a device or another tensor's device is the model's own on this side."""
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
        elif isinstance(a, torch.Tensor):
            dtype = a.dtype
    return x if dtype is None else x.to(dtype)


def _getitem(x: torch.Tensor, index: Any) -> torch.Tensor:
    return x[tuple(index) if isinstance(index, list) else index]


def _sized(make: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """x.new_zeros(size) and the like, refused above MAX_CREATED values (new_empty gives zeros)."""

    def new(x: torch.Tensor, *size: Any, **kwargs: Any) -> torch.Tensor:
        dims = size[0] if len(size) == 1 and isinstance(size[0], list | tuple) else size
        count = 1
        for d in dims:
            count *= int(d) if isinstance(d, int) else 1
        if count > MAX_CREATED:
            raise ValueError(f"it creates a tensor of {count} values inside forward")
        return make(x, *size, **kwargs)

    return new


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.t()


def _copy(x: torch.Tensor, src: Any) -> torch.Tensor:
    """x.copy_(src) out of place: src in x's shape and dtype (what copy_ leaves in x)."""
    return torch.as_tensor(src, device=x.device).to(x.dtype).expand_as(x).clone()


def _batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: Any = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """F.batch_norm whose momentum may be a value of the graph: nn.BatchNorm1d(momentum=None) averages its running
    statistics over all batches, with the momentum 1 / num_batches_tracked, which the capture records as one."""
    if isinstance(momentum, torch.Tensor):
        momentum = float(momentum)
    return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


_BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "gt": torch.gt, "lt": torch.lt, "ge": torch.ge, "le": torch.le, "eq": torch.eq, "ne": torch.ne,
    "matmul": torch.matmul, "true_divide": torch.div, "maximum": torch.maximum, "minimum": torch.minimum,
}  # fmt: skip
_REVERSED = {"__radd__": torch.add, "__rsub__": torch.sub, "__rmul__": torch.mul, "__rtruediv__": torch.div,
             "__rdiv__": torch.div, "__rpow__": torch.pow, "__rmatmul__": torch.matmul}  # fmt: skip
_UNARY = {
    "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "abs": torch.abs, "neg": torch.neg, "reciprocal": torch.reciprocal,
    "square": torch.square, "clone": torch.clone, "detach": torch.detach, "contiguous": torch.Tensor.contiguous,
    "float": torch.Tensor.float, "double": torch.Tensor.double, "bool": torch.Tensor.bool,
    "t": _t, "sign": torch.sign,
}  # fmt: skip
_METHODS = {
    "view": torch.Tensor.view, "reshape": torch.reshape, "flatten": torch.flatten, "squeeze": torch.squeeze,
    "unsqueeze": torch.unsqueeze, "transpose": torch.transpose, "permute": torch.Tensor.permute,
    "expand": torch.Tensor.expand, "expand_as": torch.Tensor.expand_as, "type_as": torch.Tensor.type_as,
    "clamp": torch.clamp, "clamp_min": torch.clamp_min, "clamp_max": torch.clamp_max, "mean": torch.mean,
    "sum": torch.sum, "var": torch.var, "std": torch.std, "softmax": torch.softmax,
    "log_softmax": torch.log_softmax, "masked_fill": torch.Tensor.masked_fill, "mm": torch.mm,
    "addmm": torch.addmm, "where": torch.where, "to": _to, "__getitem__": _getitem, "max": torch.max,
    "min": torch.min, "amax": torch.amax, "amin": torch.amin, "norm": torch.norm, "lerp": torch.lerp,
}  # fmt: skip

OPS: dict[str, Op] = {}
for _name, _fn in {**_BINARY, **_UNARY, **_METHODS}.items():
    OPS[f"Tensor.{_name}"] = _fn
    if _name not in ("contiguous", "float", "double", "bool", "view", "permute", "expand", "expand_as", "type_as",
                     "masked_fill", "to", "__getitem__"):  # fmt: skip
        OPS[f"torch.{_name}"] = _fn
for _name in ("add", "sub", "mul", "truediv", "div", "pow", "matmul", "gt", "lt", "ge", "le", "eq", "ne"):
    OPS[f"Tensor.__{_name}__"] = _BINARY["div" if _name == "truediv" else _name]
for _name, _fn in _REVERSED.items():
    OPS[f"Tensor.{_name}"] = (lambda f: lambda x, other: f(other, x))(_fn)
OPS.update(
    {
        "Tensor.__neg__": torch.neg, "Tensor.T": _t, "Tensor.mT": lambda x: x.mT, "Tensor.data": torch.detach,
        "Tensor.bernoulli": _bernoulli_, "torch.bernoulli": torch.bernoulli, "Tensor.uniform": _uniform_,
        "Tensor.normal": _normal_,
        "torch.rand_like": torch.rand_like, "torch.randn_like": torch.randn_like, "torch.ones_like": torch.ones_like,
        "torch.zeros_like": torch.zeros_like, "torch.empty_like": torch.zeros_like, "torch.full_like": torch.full_like,
        "torch.rand": torch.rand, "torch.randn": torch.randn, "torch.ones": torch.ones, "torch.zeros": torch.zeros,
        "torch.empty": torch.zeros, "torch.full": torch.full, "torch.tensor": torch.tensor,
        "torch.dropout": torch.dropout,
        "Tensor.copy": _copy,  # only as copy_ (there is no Tensor.copy): x.copy_(src) writes src into x
        "F.linear": F.linear, "F.relu": F.relu, "F.dropout": F.dropout, "F.batch_norm": _batch_norm,
        "F.layer_norm": F.layer_norm, "F.tanh": torch.tanh, "F.sigmoid": torch.sigmoid, "F.softmax": F.softmax,
        "F.log_softmax": F.log_softmax, "F.leaky_relu": F.leaky_relu, "F.gelu": F.gelu, "F.elu": F.elu,
        "F.silu": F.silu, "F.softplus": F.softplus, "F.hardtanh": F.hardtanh, "F.relu6": F.relu6,
        "F.threshold": F.threshold, "torch.batch_norm": torch.batch_norm, "F.normalize": F.normalize,
        "Tensor.new_empty": _sized(torch.Tensor.new_zeros), "Tensor.new_zeros": _sized(torch.Tensor.new_zeros),
        "Tensor.new_ones": _sized(torch.Tensor.new_ones),
        "Tensor.new_full": lambda x, size, fill_value, **kw: _sized(torch.Tensor.new_full)(x, size, fill_value, **kw),
    }
)  # fmt: skip

#: Keyword arguments a captured call may carry (others are refused); ``inplace`` and ``device`` are dropped.
KWARGS = frozenset(
    {
        "inplace", "training", "p", "dim", "keepdim", "unbiased", "correction", "min", "max", "alpha", "dtype",
        "negative_slope", "approximate", "beta", "threshold", "eps", "momentum", "weight", "bias", "running_mean",
        "running_var", "value", "other", "input", "mat1", "mat2", "generator", "device", "requires_grad",
        "memory_format", "layout", "pin_memory", "non_blocking", "copy", "mean", "std", "from", "to", "start_dim",
        "end_dim", "normalized_shape", "exponent", "size", "fill_value", "data", "dim0", "dim1", "mask", "ord",
        "_stacklevel",
    }
)  # fmt: skip
DROPPED_KWARGS = frozenset({"inplace", "device", "requires_grad", "memory_format", "layout", "pin_memory",
                            "non_blocking", "copy", "generator", "_stacklevel"})  # fmt: skip

#: What to write instead of a common operation the grader does not rebuild.
HINTS = {
    "Tensor.numpy": "keep the computation in torch (numpy arrays are not part of a model's graph)",
    "Tensor.tolist": "keep the computation in torch",
    "torch.sort": "an MLP of the lab needs no sorting",
    "torch.cat": "the lab's models need no concatenation: build them from nn.Linear layers",
    "torch.stack": "the lab's models need no stacking: build them from nn.Linear layers",
    "F.dropout1d": "use nn.Dropout or F.dropout",
    "F.alpha_dropout": "use nn.Dropout or F.dropout",
    "Tensor.cuda": "the grader moves the model to its device itself; remove .cuda()",
    "Tensor.cpu": "the grader moves the model to its device itself; remove .cpu()",
}


def canonical(name: str) -> str:
    """The whitelist's name of a captured operation: in-place forms and their out-of-place twin share one."""
    prefix, _, base = name.partition(".")
    if base.startswith("__i") and base.endswith("__") and f"{prefix}.__{base[3:]}" in OPS:
        return f"{prefix}.__{base[3:]}"  # __iadd__ -> __add__
    if base.endswith("_") and not base.endswith("__"):
        stripped = f"{prefix}.{base[:-1]}"
        if stripped in OPS:
            return stripped
        if prefix == "F" and f"F.{base[:-1]}" in OPS:
            return f"F.{base[:-1]}"
    return name


def allowed(name: str) -> bool:
    return canonical(name) in OPS


def in_place(name: str) -> bool:
    """Whether a captured operation is an in-place form (``add_``, ``__iadd__``), which writes its first argument."""
    return canonical(name) != name


#: Operations whose result shares the memory of their argument, so that an in-place call on it writes the argument.
_ALIASES = frozenset({"Tensor.data", "Tensor.detach", "torch.detach"})


def buffer_writes(calls: list[tuple[str, Any]], buffers: set[str]) -> dict[int, str]:
    """The calls that write one of the model's buffers in place (running statistics kept by hand, batch norm's
    count of batches), as {value: buffer name}; ``calls`` are (operation, first argument) in program order, values
    from 1. A call writes a buffer when its first argument is the buffer, a value an earlier write returned, or the
    buffer's ``.data`` or ``.detach()`` (which share its memory: ``self.running_mean.data.mul_(0.9)``)."""
    writes: dict[int, str] = {}
    aliases: dict[int, str] = {}
    for value, (name, first) in enumerate(calls, start=1):
        if not isinstance(first, dict):
            continue
        target = first.get("p") if first.get("p") in buffers else None
        target = target or writes.get(first.get("v")) or aliases.get(first.get("v"))  # type: ignore[arg-type]
        if target is None:
            continue
        if in_place(name):
            writes[value] = target
        elif name in _ALIASES:
            aliases[value] = target
    return writes


def refusal(name: str) -> str:
    """What a student reads when their forward uses an operation outside the whitelist."""
    hint = HINTS.get(name)
    shown = name.replace("F.", "torch.nn.functional.", 1) if name.startswith("F.") else name
    advice = hint or (
        "write the model with nn.Linear layers, activations (nn.ReLU, F.relu, torch.tanh, ...), nn.Dropout or "
        "F.dropout (or a random mask), nn.BatchNorm1d and elementwise arithmetic; docs/students.md lists what works"
    )
    return f"its forward uses {shown}, which the grader cannot rebuild outside the sandbox: {advice}."
