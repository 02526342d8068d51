"""Correct submissions written in many students' styles must all get full marks.

Each file of tests/submissions/correct/ is a complete, correct solution of the lab written the way a real
student might write it (nn.Sequential or custom Modules, functional parameters, hand-written or paper-style
dropout, numpy SIGMAS, in-place ReLU, different ways of folding BatchNorm, ...); its docstring names its style.
A grader that takes points from any of them mistakes a style for a fault.
"""

import ast

import pytest
from conftest import SUBMISSIONS, graded_fast

CORRECT = SUBMISSIONS / "correct"
FILES = sorted(CORRECT.glob("*.py"))
MIN_FILES = 14


def test_corpus_has_enough_documented_solutions():
    assert len(FILES) >= MIN_FILES, f"only {len(FILES)} correct submissions in {CORRECT}"
    for path in FILES:
        docstring = ast.get_docstring(ast.parse(path.read_text(), filename=str(path)))
        assert docstring and docstring.strip(), f"{path.name} has no module docstring naming its style"


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_correct_submission_gets_full_marks(path):
    result = graded_fast(path)
    lost = [
        (check.id, check.score, check.max_score, check.message)
        for check in result.checks
        if check.score != check.max_score
    ]
    assert result.score == result.max_score, f"{path.name}: {result.score} / {result.max_score}; lost: {lost}"
