"""Export a GradeResult in Gradescope's autograder format (results.json), so the grader doubles as one."""

from __future__ import annotations

from grader.result import GradeResult

_STATUS = {"passed": "passed", "failed": "failed", "error": "failed", "skipped": "failed"}


def to_gradescope(result: GradeResult) -> dict:
    tests = []
    for c in result.checks:
        lines = [c.message]
        lines += [f"- {i.title}: {i.points:g}/{i.max_points:g}. {i.detail}" for i in c.items if i.max_points > 0]
        if c.hint:
            lines.append(f"Hint: {c.hint}")
        if c.failure and c.failure.traceback:
            lines.append(c.failure.traceback)
        tests.append(
            {
                "name": c.title,
                "score": c.score,
                "max_score": c.max_score,
                "status": _STATUS[c.status],
                "output": "\n".join(lines),
            }
        )
    output = f"Graded by labgrader {result.grader_version} on {result.device}"
    if result.fast_mode:
        output += " in FAST MODE (smaller budgets; not a real grade)"
    return {"score": result.score, "tests": tests, "output": output + ".", "visibility": "visible"}
