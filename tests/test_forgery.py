"""Forged submissions (tests/submissions/forgery): each is an honest base file with one real fault, plus an attack
that tries to forge a score. Student code only builds models in the sandbox; everything that is measured is
measured on graphs rebuilt where no student code ran, so no attack may earn more than its honest base, in total
or in any check.

A forgery's docstring names its base ("Base: base_....py") and, where the attack is meant to earn what an honest
file that really does what the forgery shows earns, the file it is graded against ("Graded against: ...").
Nothing here imports a forgery: their attacks run at import and belong in the sandbox only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

import pytest
from conftest import SUBMISSIONS, graded_fast

from grader import GradeResult

FORGERY = SUBMISSIONS / "forgery"
ATTACK_MARK = "# ---------------------------------------- the attack: everything above is the base file, unchanged"
_BASE = re.compile(r"^Base: (base_\w+\.py)\b", re.M)
_AGAINST = re.compile(r"^Graded against: (base_\w+\.py)\b", re.M)


#: Forgeries that still gain points on the grader as it is (measured 2026-12-05, fast budgets). Strict: once the
#: grader stops them, the test passes, pytest reports it, and the entry must go.
#: Forgeries that still gain points, as strict expected failures (none open: buffer weights and label lookups in
#: tensor operations were closed by the architecture and init_sanity checks).
HOLES: dict[str, str] = {}


def forgeries() -> list[str]:
    return sorted(p.stem for p in FORGERY.glob("*.py") if not p.name.startswith("base_"))


def with_holes(names: list[str]) -> list:
    """The names as pytest params, those in HOLES marked as strict expected failures."""
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=HOLES[n])) if n in HOLES else n for n in names]


def docstring(name: str) -> str:
    return ast.get_docstring(ast.parse((FORGERY / f"{name}.py").read_text())) or ""


def base_of(name: str) -> str:
    """The honest file the forgery is a copy of (its stem)."""
    match = _BASE.search(docstring(name))
    assert match, f"{name}.py: its docstring names no 'Base: base_....py'"
    return match.group(1).removesuffix(".py")


def honest_of(name: str) -> str:
    """The honest file the forgery must not beat: its base, unless the docstring says otherwise."""
    match = _AGAINST.search(docstring(name))
    return match.group(1).removesuffix(".py") if match else base_of(name)


def code_of(name: str) -> str:
    """A file's source after its docstring."""
    text = (FORGERY / f"{name}.py").read_text()
    return text[text.index('"""', 3) + 3 :].strip("\n")


# --- fast: the corpus is what it says it is ------------------------------------------------------------------


def test_the_corpus_has_every_attack():
    assert {
        "patch_tasks", "sigma_swap", "buffer_weights", "token_from_frames", "trace_aware", "label_table",
        "sandbox_escape_write", "label_table_ops",
    } <= set(forgeries())  # fmt: skip
    assert set(HOLES) <= set(forgeries())


@pytest.mark.parametrize("name", forgeries())
def test_each_forgery_names_an_existing_base_and_is_a_copy_of_it(name):
    text = docstring(name)
    for section in ("Attack:", "Current design", "Now:"):
        assert section in text, f"{name}.py: its docstring lacks '{section}'"
    base, honest = base_of(name), honest_of(name)
    assert (FORGERY / f"{base}.py").is_file(), f"{name}.py names {base}.py, which does not exist"
    assert (FORGERY / f"{honest}.py").is_file(), f"{name}.py is graded against {honest}.py, which does not exist"
    body = code_of(name)
    assert ATTACK_MARK in body, f"{name}.py: no attack mark"
    honest_part = body[: body.index(ATTACK_MARK)].strip("\n")
    assert honest_part == code_of(base), f"{name}.py: the part above the attack is not {base}.py's code"


def test_every_base_is_used():
    used = {base_of(n) for n in forgeries()} | {honest_of(n) for n in forgeries()}
    assert used == {p.stem for p in FORGERY.glob("base_*.py")}


# --- slow: grading each forgery and its honest file --------------------------------------------------------


@pytest.fixture(scope="module")
def graded() -> Callable[[str], GradeResult]:
    """Each file of the corpus graded once (fast budgets), whichever forgeries share it."""
    cache: dict[str, GradeResult] = {}

    def get(name: str) -> GradeResult:
        if name not in cache:
            cache[name] = graded_fast(FORGERY / f"{name}.py")
        return cache[name]

    return get


def assert_gains_nothing(forged: GradeResult, honest: GradeResult) -> None:
    scores = {c.id: c.score for c in honest.checks}
    for check in forged.checks:
        assert check.id in scores, check.id
        assert check.score <= scores[check.id], (check.id, check.score, scores[check.id], check.message)
    assert forged.score <= honest.score


def dropout_items(result: GradeResult) -> dict[str, bool]:
    return {i.id: i.passed for i in result.check("dropout").items if i.max_points > 0}


@pytest.mark.slow  # two gradings at most (20-40 s each; the honest files are shared)
@pytest.mark.parametrize("name", with_holes(forgeries()))
def test_forgery_gains_nothing_over_its_honest_file(name, graded):
    forged, honest = graded(name), graded(honest_of(name))
    assert honest.submission.load_failure is None, honest.submission.load_failure
    assert_gains_nothing(forged, honest)


@pytest.mark.slow
def test_swapped_sigmas_do_not_pass_the_sweep(graded):
    sweep = graded("sigma_swap").check("sigma_sweep")
    assert sweep.score < sweep.max_score, sweep.message


@pytest.mark.slow
def test_a_model_that_behaves_only_when_watched_is_graded_as_what_was_watched(graded):
    """trace_aware shows a correct dropout model to whatever watches it: the captured graph is what is trained and
    measured, so its dropout check is exactly that of one of the two honest files (the reference when the capture
    was detected, base_no_dropout otherwise), and never more than the reference."""
    forged = graded("trace_aware")
    honest = [graded("base_plain"), graded("base_no_dropout")]
    check = forged.check("dropout")
    assert (check.score, dropout_items(forged)) in [(h.check("dropout").score, dropout_items(h)) for h in honest]
    assert_gains_nothing(forged, honest[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", with_holes([n for n in forgeries() if n.startswith("label_table")]))
def test_a_label_table_does_not_raise_the_reported_validation_accuracy(name, graded):
    forged = graded(name).check("dropout").metrics.get("with_dropout")
    honest = graded(base_of(name)).check("dropout").metrics["with_dropout"]
    if forged is not None:  # a build the grader refused reports no validation error at all
        assert forged["val_error"] >= honest["val_error"] - 1.0, (forged["val_error"], honest["val_error"])
