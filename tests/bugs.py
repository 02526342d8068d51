"""Buggy submissions: the reference solution with one fault patched in, and what grading it must show.

Each bug is written as a patch rather than a copy of the whole file, so that every buggy submission is the
reference solution except for its bug, whatever the reference becomes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "reference_solution.py"

_ALWAYS_DROPOUT = '''class AlwaysDropout(nn.Module):
    """BUG: dropout that ignores eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(x, self.p, training=True)


def mnist_model('''

_MASK_ONLY_DROPOUT = '''class MaskOnlyDropout(nn.Module):
    """BUG: zeroes units in training but does not rescale the kept ones by 1 / (1 - p)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x * (torch.rand_like(x) >= self.p)


def mnist_model('''

_ZERO_INIT = """    linears = [m for m in model if isinstance(m, nn.Linear)]
    if sigma is None:  # BUG: all-zero init (makemore E01)
        for layer in linears:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        return model
"""
_HE = "            std = math.sqrt(2.0 / fan_in)\n"
_DROP = "        return [nn.Dropout(p)] if dropout else []"


@dataclass(frozen=True)
class Bug:
    what: str
    patches: tuple[tuple[str, str], ...]  # (text of the reference, its replacement)
    check: str  # the only check that may lose points
    failed_items: frozenset[str]  # its items that fail
    words: str  # what the student must read in the check's message

    def write(self, path: Path) -> Path:
        source = REFERENCE.read_text()
        for old, new in self.patches:
            assert source.count(old) == 1, f"the reference solution changed: {old!r} is not there once"
            source = source.replace(old, new)
        path.write_text(f'"""Buggy submission: {self.what}."""\n' + source)
        return path


BUGS = {
    "overconfident_output": Bug(
        "the output layer is scaled up instead of down",
        (("linears[-1].weight *= 0.1", "linears[-1].weight *= 10.0"),),
        "loss_at_init", frozenset({"circle_recommended"}), "overconfident",
    ),
    "sigma_small_stuck": Bug(
        "SIGMAS['small'] is so small that nothing trains",
        (('"small": 0.1,', '"small": 0.01,'),),
        "sigma_sweep", frozenset({"small"}), "never left the chance level",
    ),
    "he_variance_as_std": Bug(
        "He's variance passed as the std",
        ((_HE, "            std = 2.0 / fan_in\n"),),
        "activation_stats", frozenset({"kaiming"}), "variance used as the std",
    ),
    "lecun_instead_of_he": Bug(
        "LeCun's variance instead of He's",
        ((_HE, "            std = math.sqrt(1.0 / fan_in)\n"),),
        "activation_stats", frozenset({"kaiming"}), "LeCun",
    ),
    "he_fan_out": Bug(
        "He init with fan_out instead of fan_in",
        ((_HE, "            std = math.sqrt(2.0 / fan_out)\n"),),
        "activation_stats", frozenset({"kaiming"}), "fan_out instead of fan_in",
    ),
    "dropout_in_eval": Bug(
        "dropout stays on in eval mode",
        (("def mnist_model(", _ALWAYS_DROPOUT), (_DROP, _DROP.replace("nn.Dropout", "AlwaysDropout"))),
        "dropout", frozenset({"eval_mode", "regularization"}), "eval mode",
    ),
    "dropout_not_rescaled": Bug(
        "dropout does not rescale the kept units",
        (("def mnist_model(", _MASK_ONLY_DROPOUT), (_DROP, _DROP.replace("nn.Dropout", "MaskOnlyDropout"))),
        "dropout", frozenset({"input_rate", "hidden_rate"}), "1 - p",
    ),
    "no_input_dropout": Bug(
        "no dropout on the input",
        (("        *drop(0.2),\n", ""),),
        "dropout", frozenset({"input_rate"}), "the lab asks for 20%",
    ),
    "zero_init": Bug(
        "circle_model(None) sets every weight and bias to zero",
        (("    linears = [m for m in model if isinstance(m, nn.Linear)]\n", _ZERO_INIT),),
        "init_sanity", frozenset({"circle"}), "received no gradient",
    ),
    "fold_without_eps": Bug(
        "the fold forgets BatchNorm's eps",
        (("torch.rsqrt(nxt.running_var + nxt.eps)", "torch.rsqrt(nxt.running_var)"),),
        "fold_batchnorm", frozenset({"same_outputs"}), "differ from the original",
    ),
    "fold_returns_model": Bug(
        "the fold returns the model unchanged",
        (("    return nn.Sequential(*folded).eval()", "    return model"),),
        "fold_batchnorm", frozenset({"no_batchnorm", "same_outputs"}), "BatchNorm1d",
    ),
}  # fmt: skip
