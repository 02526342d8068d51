"""The architectures and inits the lab prescribes, from each model's captured graph and weights.

circle_model(sigma): 2 -> 6 -> 3 -> 2 with ReLU, weights N(0, sigma) for every sigma it is given, zero biases.
deep_model(init): 20 linear layers about 100 wide with ReLU, zero biases. mnist_model(dropout): 784 -> 800 ->
800 -> 10 with ReLU, weights N(0, 0.1), zero biases. Every model returns the last layer's output (logits) as
it is, in train and eval mode, and its weights are trainable parameters.
"""

from __future__ import annotations

from grader.assignment import Assignment
from grader.checks.activation_stats import INITS
from grader.checks.base import CheckSpec, item, scored
from grader.checks.prescribed import (
    Unbuilt,
    init_stats,
    model,
    sigma_fault,
    std_matches,
    structure,
)
from grader.result import CheckResult, Item
from grader.session import Session

ID, TITLE = "architecture", "Architectures and inits the lab prescribes"
ABOUT = (
    "Each model as the lab prescribes it, read from what its forward pass does and from its weights: the "
    "layer sizes, a ReLU between layers, the logits returned as they are (no softmax, activation or dropout "
    "after the last layer), weights drawn from the prescribed distribution (N(0, sigma) for every sigma "
    "circle_model is given, N(0, 0.1) for the image network) and zero biases."
)
HINT = (
    "Build each model exactly as the lab describes (docs/students.md): the layer sizes, ReLU between layers, "
    "nothing after the last layer (it returns logits), weights from the prescribed distribution and zero biases."
)
CIRCLE = [(6, 2), (3, 6), (2, 3)]
MNIST = [(800, 784), (800, 800), (10, 800)]
DEEP_LAYERS, DEEP_WIDTH = 20, (50, 200)
MNIST_STD = 0.1
EXTRA_STATE = 1000  # values of state a model may use besides its layers' weights and biases


def _shapes(shapes: list[tuple[int, int]]) -> str:
    if not shapes:
        return "no layers"
    return " -> ".join([str(shapes[0][1]), *(str(s[0]) for s in shapes)])


def _circle(session: Session, a: Assignment) -> Item:
    c = a.circle
    seed = c.seeds[0]
    problems: list[str] = []
    try:
        m = model(session, f"circle.g0.s{seed}")
        s = structure(m, 2, f"circle_model({c.sigma_grid[0]:g})")
        problems += s.faults
        if s.shapes != CIRCLE:
            problems.append(f"circle_model is {_shapes(s.shapes)}; the lab's network is 2 -> 6 -> 3 -> 2.")
    except Unbuilt:
        return item(a, ID, "circle", "circle_model: 2-6-3-2, ReLU, N(0, sigma)", False,
                    "circle_model(sigma) could not be built, so its architecture could not be checked.")  # fmt: skip
    try:  # the recommended init too: its weights must be trainable parameters
        recommended = structure(model(session, f"circle.none.s{seed}"), 2, "circle_model(None)")
        problems += [f for f in recommended.faults if "not an nn.Parameter" in f]
    except Unbuilt:
        pass
    if not problems:
        builds = [(f"circle.g{j}", sigma, f"circle_model({sigma:g})") for j, sigma in enumerate(c.sigma_grid)]
        builds += [(f"circle.{label}", sigma, f"circle_model(SIGMAS[{label!r}] = {sigma:g})")
                   for label, sigma in (session.sigmas or {}).items()]  # fmt: skip
        for prefix, sigma, shown in builds:
            fault = sigma_fault(session, prefix, sigma, shown)
            if fault:
                problems.append(fault)
                break
    ok = not problems
    detail = (
        " ".join(problems)
        if problems
        else (
            "circle_model(sigma) is 2 -> 6 -> 3 -> 2 with ReLU, returns logits, and draws its weights from "
            "N(0, sigma) with zero biases for every sigma of the sweep."
        )
    )
    return item(a, ID, "circle", "circle_model: 2-6-3-2, ReLU, N(0, sigma)", ok, detail)


def _deep(session: Session, a: Assignment) -> Item:
    problems: list[str] = []
    for init in INITS:
        shown = f"deep_model({init!r})"
        try:
            m = model(session, f"deep.{init}")
        except Unbuilt:
            problems.append(f"{shown} could not be built.")
            continue
        s = structure(m, 2, shown)
        problems += s.faults
        widths = {o for o, _ in s.shapes[:-1]}
        if (
            len(s.shapes) != DEEP_LAYERS
            or s.shapes[0][1] != 2
            or s.shapes[-1][0] != 2
            or len(widths) != 1
            or not (DEEP_WIDTH[0] <= min(widths) <= DEEP_WIDTH[1])
        ):
            problems.append(
                f"{shown} has {len(s.shapes)} layers ({_shapes(s.shapes)[:120]}); the lab's deep net has 20 linear "
                "layers, 2 inputs, about 100 units in each hidden layer, 2 outputs."
            )
        stats = init_stats([m])
        if stats.bias_max > 1e-8:
            problems.append(f"{shown} has biases up to {stats.bias_max:.3g}; the lab's deep net has zero biases "
                            "(only the weights follow the init).")  # fmt: skip
        if problems:
            break
    detail = (
        " ".join(problems)
        if problems
        else ("deep_model has 20 linear layers with ReLU, returns logits and has zero biases for every init.")
    )
    return item(a, ID, "deep", "deep_model: 20 layers, ReLU, zero biases", not problems, detail)


def mnist_structure(session: Session) -> list[str]:
    """What makes the MNIST models something other than the lab's MLP (layers, wiring, output, extra state),
    measured on the grader's own images; [] when they are the lab's MLP or could not be built (memoized)."""

    def compute() -> list[str]:
        problems: list[str] = []
        images = session.mnist_data.x_val[:64] if session.mnist_data is not None else None
        for variant, arg in (("plain", False), ("dropout", True)):
            shown = f"mnist_model({arg})"
            try:
                m = model(session, f"mnist.{variant}")
            except Unbuilt:
                continue
            s = structure(m, 784, shown, x=images)
            wiring = ("first layer does not get", "between layer")  # dropout left on in eval: the dropout check's
            problems += [f for f in s.faults if variant == "plain" or not any(w in f for w in wiring)]
            if s.shapes != MNIST:
                problems.append(f"{shown} is {_shapes(s.shapes)}; the lab's network is 784 -> 800 -> 800 -> 10.")
            used = {u.weight for u in m.units(True)} | {u.bias for u in m.units(True) if u.bias is not None}
            extra = sum(m.tensor(n).numel() for n, _ in _state(m) if n not in used)
            if extra > EXTRA_STATE:
                problems.append(
                    f"{shown} holds {extra} values of state besides its layers' weights and biases; the lab's MLP "
                    "has nothing else."
                )
            if problems:
                break
        return problems

    return session.memo("architecture:mnist", compute)  # type: ignore[return-value]


def _mnist(session: Session, a: Assignment) -> Item:
    problems: list[str] = list(mnist_structure(session))
    for variant, arg in (("plain", False), ("dropout", True)):
        if problems:
            break
        shown = f"mnist_model({arg})"
        try:
            m = model(session, f"mnist.{variant}")
        except Unbuilt:
            problems.append(f"{shown} could not be built.")
            continue
        for k in range(len(MNIST)):
            stats = init_stats([m], layer=k)
            if not std_matches(stats.std, MNIST_STD, stats.n):
                problems.append(
                    f"{shown}: layer {k + 1}'s weights have std {stats.std:.3g}; the lab draws them from N(0, 0.1) "
                    "(PyTorch's default init is not it)."
                )
                break
        stats = init_stats([m])
        if stats.bias_max > 1e-8:
            problems.append(f"{shown} has biases up to {stats.bias_max:.3g}; the lab asks for zero biases.")
    detail = (
        " ".join(problems)
        if problems
        else (
            "mnist_model is 784 -> 800 -> 800 -> 10 with ReLU, returns logits in both modes, and has N(0, 0.1) "
            "weights and zero biases."
        )
    )
    return item(a, ID, "mnist", "mnist_model: 784-800-800-10, ReLU, N(0, 0.1)", not problems, detail)


def _state(m) -> list[tuple[str, str]]:
    return [(s.name, s.kind) for s in m.graph.state]


def check(session: Session, a: Assignment) -> CheckResult:
    has = {n for n, kind in session.names.items() if kind == "function"}
    items = []
    for name, fn, label in (("circle_model", _circle, "circle"), ("deep_model", _deep, "deep"),
                            ("mnist_model", _mnist, "mnist")):  # fmt: skip
        if name in has and (name != "mnist_model" or session.mnist_data is not None):
            items.append(fn(session, a))
        else:
            items.append(item(a, ID, label, name, False, f"{name} is missing, so its architecture was not checked."))
    return scored(ID, TITLE, items, hint=HINT,
                  passed_message="Every model has the lab's layers, activations and init.")  # fmt: skip


# it reads the graphs and weights of the models the other checks build, and starts no run of its own
SPEC = CheckSpec(ID, TITLE, (), check, about=ABOUT)
