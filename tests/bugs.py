"""Buggy submissions: the reference solution with one fault patched in, and what grading it must show.

Each bug is written as a patch rather than a copy of the whole file, so that every buggy submission is the
reference solution except for its bug, whatever the reference becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
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

_SEEDED_DROPOUT = '''class SeededDropout(nn.Module):
    """BUG: seeds torch inside forward, so every pass drops the same units."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        torch.manual_seed(0)
        return x * (torch.rand_like(x) >= self.p) / (1 - self.p)


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
_MNIST_OUT = "        nn.Linear(800, 10),\n    )"
_CIRCLE_OUT = "        nn.Linear(3, 2),\n    )"
_CIRCLE_INIT = "math.sqrt(2.0 / layer.in_features)\n        _init_linear(layer, std)\n"
_BIAS_FROM_SIGMA = "        if sigma is not None:\n            nn.init.normal_(layer.bias, 0.0, sigma)\n"
_DEEP_INIT = '            raise ValueError(f"unknown init {init!r}")\n        _init_linear(layer, std)\n'


@dataclass(frozen=True)
class Bug:
    what: str
    patches: tuple[tuple[str, str], ...]  # (text of the reference, its replacement)
    check: str  # the only check that may lose points
    failed_items: frozenset[str]  # its items that fail
    words: str  # what the student must read in the check's message
    #: other checks that lose points through the same fault, and their failing items (e.g. softmax logits also
    #: spoil the sweep's regimes); the main check's message names the fault
    also: dict[str, frozenset[str]] = field(default_factory=dict)

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
        "loss_at_init", frozenset({"circle_recommended", "output_small"}), "overconfident",
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
    "dropout_fixed_mask": Bug(
        "dropout seeded inside forward: the same mask on every pass",
        (("def mnist_model(", _SEEDED_DROPOUT), (_DROP, _DROP.replace("nn.Dropout", "SeededDropout"))),
        "dropout", frozenset({"hidden_rate"}), "same mask on every pass",
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
    "truthy_sigma": Bug(
        "circle_model tests `if sigma:`, so sigma = 0 gets the recommended init instead of zeros",
        (("        std = sigma if sigma is not None else", "        std = sigma if sigma else"),
         ("    if sigma is None:\n        with torch.no_grad():", "    if not sigma:\n        with torch.no_grad():")),
        "init_sanity", frozenset({"zero_init"}), "does not start at zero",
    ),
    "fold_without_eps": Bug(
        "the fold forgets BatchNorm's eps",
        (("torch.rsqrt(nxt.running_var + nxt.eps)", "torch.rsqrt(nxt.running_var)"),),
        "fold_batchnorm", frozenset({"same_outputs"}), "eps (0.001) is missing",
    ),
    "mnist_softmax_output": Bug(
        "mnist_model returns softmax probabilities",
        ((_MNIST_OUT, "        nn.Linear(800, 10),\n        nn.Softmax(dim=1),\n    )"),),
        "architecture", frozenset({"mnist"}), "softmax probabilities instead of logits",
        also={"dropout": frozenset({"regularization"})},  # trained on probabilities, neither model learns much
    ),
    "mnist_dropout_on_logits": Bug(
        "dropout after the last Linear layer",
        ((_MNIST_OUT, "        nn.Linear(800, 10),\n        *drop(0.5),\n    )"),),
        "architecture", frozenset({"mnist"}), "never on the logits",
    ),
    "mnist_default_init": Bug(
        "mnist_model keeps PyTorch's default init",
        (("            _init_linear(m, 0.1)\n", "            pass\n"),),
        "architecture", frozenset({"mnist"}), "PyTorch's default init",
    ),
    "mnist_small_net": Bug(
        "784-64-64-10 with PyTorch's default init",
        (("nn.Linear(784, 800)", "nn.Linear(784, 64)"), ("nn.Linear(800, 800)", "nn.Linear(64, 64)"),
         ("nn.Linear(800, 10)", "nn.Linear(64, 10)"), ("            _init_linear(m, 0.1)\n", "            pass\n")),
        "architecture", frozenset({"mnist"}), "784 -> 800 -> 800 -> 10",
        also={"dropout": frozenset({"regularization"})},
    ),
    "circle_biases_from_sigma": Bug(
        "circle biases drawn from N(0, sigma)",
        ((_CIRCLE_INIT, _CIRCLE_INIT + _BIAS_FROM_SIGMA),),
        "architecture", frozenset({"circle"}), "zero biases",
    ),
    "circle_softmax_output": Bug(
        "circle_model returns softmax probabilities",
        ((_CIRCLE_OUT, "        nn.Linear(3, 2),\n        nn.Softmax(dim=1),\n    )"),),
        "architecture", frozenset({"circle"}), "softmax probabilities instead of logits",
        also={"sigma_sweep": frozenset({"small", "good", "big"}), "loss_at_init": frozenset({"output_small"})},
    ),
    "deep_biases_like_weights": Bug(
        "deep_model's biases drawn like its weights",
        ((_DEEP_INIT, _DEEP_INIT + "        nn.init.normal_(layer.bias, 0.0, std)\n"),),
        "architecture", frozenset({"deep"}), "zero biases",
        also={"activation_stats": frozenset({"xavier"})},
    ),
    "output_layer_not_scaled": Bug(
        "circle_model(None) keeps He init on the output layer (no makemore fix)",
        (("            linears[-1].weight *= 0.1  # output layer: not overconfident at init", "            pass"),),
        "loss_at_init", frozenset({"output_small"}), "Scale the last layer's weights down",
    ),
    "fold_ignores_running_mean": Bug(
        "the fold does not subtract the running mean",
        (("shift = -nxt.running_mean * scale", "shift = torch.zeros_like(nxt.running_mean)"),),
        "fold_batchnorm", frozenset({"same_outputs"}), "the running mean is not subtracted",
    ),
    "fold_forgets_beta": Bug(
        "the fold forgets beta",
        (("shift * nxt.weight + nxt.bias", "shift * nxt.weight"),),
        "fold_batchnorm", frozenset({"same_outputs"}), "is not added",
    ),
    "fold_divides_by_variance": Bug(
        "the fold divides by the variance instead of the std",
        (("torch.rsqrt(nxt.running_var + nxt.eps)", "1 / (nxt.running_var + nxt.eps)"),),
        "fold_batchnorm", frozenset({"same_outputs"}), "divides by the variance",
    ),
    "fold_returns_model": Bug(
        "the fold returns the model unchanged",
        (("    return nn.Sequential(*folded).eval()", "    return model"),),
        "fold_batchnorm", frozenset({"no_batchnorm", "same_outputs"}), "BatchNorm1d",
    ),
    "tanh_gain_one": Bug(
        "tanh_model's hidden layers use Kaiming's init without the tanh gain (gain 1)",
        (('nn.init.kaiming_normal_(layer.weight, nonlinearity="tanh")',
          'nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")'),),
        "tanh_init", frozenset({"gain"}), "Kaiming without the tanh gain",
    ),
    "tanh_normal_weights": Bug(
        "tanh_model's hidden weights are N(0, 1)",
        (('nn.init.kaiming_normal_(layer.weight, nonlinearity="tanh")', "nn.init.normal_(layer.weight)"),),
        "tanh_init", frozenset({"gain", "saturation"}), "N(0, 1) weights",
    ),
    "tanh_bias_before_batchnorm": Bug(
        "tanh_model(True) keeps the Linear bias before each BatchNorm1d",
        (("nn.Linear(fan_in, fan_out, bias=not batchnorm)", "nn.Linear(fan_in, fan_out)"),),
        "tanh_init", frozenset({"bias_before_batchnorm"}), "adds a bias before its batch norm",
    ),
    "tanh_no_batchnorm": Bug(
        "tanh_model(True) has no BatchNorm1d",
        (("norm = [nn.BatchNorm1d(fan_out)] if batchnorm else []", "norm = []"),),
        "tanh_init", frozenset({"bias_before_batchnorm"}), "has no batch norm",
    ),
}  # fmt: skip
