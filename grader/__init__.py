"""labgrader's grading library: grade a lab submission in a sandbox and return a scored, versioned result.

Names are imported lazily so that the sandbox child, which imports grader.sandbox, loads none of the
grading side."""

from importlib import import_module

_EXPORTS = {
    "grade": "grader.grading",
    "GradingError": "grader.grading",
    "Assignment": "grader.assignment",
    "load_assignment": "grader.assignment",
    "GradeResult": "grader.result",
    "CheckResult": "grader.result",
    "SCHEMA_VERSION": "grader.result",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
