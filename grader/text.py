"""Cleaning text that a submission controls before the trusted side keeps, prints or renders it.

Every string that comes out of the sandbox (failure messages, tracebacks, layer and class names, the child's meta,
the log tail) is untrusted: it may be megabytes long or carry terminal escape sequences. `clean(text, limit)`
drops ANSI escape sequences and control characters and cuts the text to `limit` characters. The limits are
documented in docs/checks.md ("Text from your code").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: the report imports this module without torch or the checks
    from grader.result import CheckResult, Failure

#: A failure message, a check's message or hint, an item's detail.
MESSAGE_LIMIT = 2000
#: A traceback (frames of the student's file and the exception line).
TRACEBACK_LIMIT = 8000
#: A name the grader copies from the sandbox into a message or a metric: a layer's or class's name.
NAME_LIMIT = 100
#: Any other string in the child's meta data (its dict keys included).
META_LIMIT = 300
#: The last part of the child's output log that the grader keeps.
LOG_TAIL_LIMIT = 8192

#: What replaces the cut part of a text.
CUT = "…"

# ANSI/ECMA-48 escape sequences: CSI (ESC [ or the C1 byte 0x9b, parameters, intermediates, a final byte),
# OSC/DCS/SOS/PM/APC strings ended by BEL or ST, and two-byte ESC sequences (an unended string loses only its
# introducer; what follows stays as plain text).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]?"
)
# C1 controls and DEL, lone surrogates (not encodable as UTF-8), and the bidirectional overrides and isolates that
# make text display in another order than it is stored; then the C0 controls.
_OTHER_CONTROLS = r"\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(r"[\x00-\x1f" + _OTHER_CONTROLS + "]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f" + _OTHER_CONTROLS + "]")
_SPACED = re.compile(r"[\t\n\r]")


def clean(text: object, limit: int, *, lines: bool = False) -> str:
    """`text` (anything; non-strings are shown with str()) without escape sequences and control characters, and
    at most `limit` characters long.

    A line break or a tab becomes a space, unless `lines` is set (tracebacks, logs): then newlines and tabs stay
    (a carriage return becomes a newline). A longer text keeps its start, then `CUT`; with `lines` it keeps its
    start and its end around `CUT` (a traceback's last line says what was raised).
    """
    if not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # an object that cannot print itself
            text = f"<{type(text).__name__}>"
    bound = 4 * limit + 4096  # bounds the work: escapes and controls rarely make up more than this
    cut = len(text) > bound
    if cut:
        text = text[: bound // 2] + text[len(text) - bound // 2 :] if lines else text[:bound]
    text = _ESCAPES.sub("", text)
    if lines:
        text = _CONTROL_BUT_LINES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    else:
        text = _CONTROL.sub("", _SPACED.sub(" ", text))
    if len(text) <= limit and not cut:
        return text
    if limit <= len(CUT):
        return text[:limit]
    keep = min(len(text), limit - len(CUT))
    if lines:
        head = keep // 2
        return text[:head] + CUT + text[len(text) - (keep - head) :]
    return text[:keep] + CUT


def clean_data(value: object, limit: int = META_LIMIT, depth: int = 0) -> object:
    """Data (the child's JSON meta, a check's metrics) with every string in it, dict keys included, cleaned to
    `limit` characters; tuples become lists, and anything nested deeper than 32 levels becomes None."""
    if isinstance(value, str):
        return clean(value, limit)
    if depth >= 32:
        return None
    if isinstance(value, dict):
        return {clean(k, limit) if isinstance(k, str) else k: clean_data(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_data(v, limit, depth + 1) for v in value]
    return value


def clean_failure(failure: Failure | None) -> Failure | None:
    if failure is None:
        return None
    traceback = failure.traceback
    return failure.model_copy(
        update={
            "kind": clean(failure.kind, NAME_LIMIT),
            "message": clean(failure.message, MESSAGE_LIMIT),
            "traceback": None if traceback is None else clean(traceback, TRACEBACK_LIMIT, lines=True),
        }
    )


def clean_check(check: CheckResult) -> CheckResult:
    """A check's result with every text in it cleaned: whatever sandbox strings a check copied into its message,
    items, metrics or series, the result and the report stay within the limits above."""
    items = [
        i.model_copy(update={"title": clean(i.title, NAME_LIMIT), "detail": clean(i.detail, MESSAGE_LIMIT)})
        for i in check.items
    ]
    series = [
        s.model_copy(update={"name": clean(s.name, NAME_LIMIT), "meta": clean_data(s.meta, MESSAGE_LIMIT)})
        for s in check.series
    ]
    return check.model_copy(
        update={
            "title": clean(check.title, NAME_LIMIT),
            "message": clean(check.message, MESSAGE_LIMIT),
            "hint": None if check.hint is None else clean(check.hint, MESSAGE_LIMIT),
            "items": items,
            "metrics": clean_data(check.metrics, MESSAGE_LIMIT),
            "series": series,
            "failure": clean_failure(check.failure),
            "about": clean(check.about, MESSAGE_LIMIT * 2),
            "facts": [
                f.model_copy(update={k: clean(getattr(f, k), MESSAGE_LIMIT) for k in ("label", "expected", "measured")})
                for f in check.facts
            ],
            "figures": [
                f.model_copy(
                    update={
                        "caption": clean(f.caption, MESSAGE_LIMIT),
                        "draw": clean(f.draw, NAME_LIMIT),
                        "options": {clean(k, NAME_LIMIT): clean(v, NAME_LIMIT) for k, v in f.options.items()},
                    }
                )  # fmt: skip
                for f in check.figures
            ],
        }
    )
