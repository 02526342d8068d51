"""Shared fixtures: grading runs are expensive, so each submission is graded once per test session."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from bugs import REFERENCE
from pypdf import PdfReader

from grader import GradeResult, grade
from grader.assignment import load_assignment

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "submissions"
#: The default lab's points, all checks together (the reference solution's score).
MAX_POINTS = sum(load_assignment().max_points(check) for check in load_assignment().points)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests run against each database run on SQLite in the fast lane and on PostgreSQL as well in the full suite."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgresql" in callspec.params.values():
            item.add_marker(pytest.mark.slow)


@cache
def graded_fast(path: Path) -> GradeResult:
    """The submission graded with the assignment's fast budgets (the reference still gets full marks there)."""
    return grade(path, fast=True)


def pdf_text(path: Path) -> tuple[str, int]:
    """All the text of a PDF, and its number of pages."""
    reader = PdfReader(path)
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


@pytest.fixture(scope="session")
def reference_fast() -> GradeResult:
    return graded_fast(REFERENCE)
