"""Assignment ids are slugs: 1 to 64 lowercase letters, digits and hyphens, starting with a letter or digit. Every
way an id comes in (the CLI, the dashboard's forms and URLs, the API's fields, roster imports, assignment files)
checks it here, and the Assignment model refuses any other, so an id is safe in a URL, a file name, an HTML
attribute and a log line alike."""

from __future__ import annotations

import re

PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_SLUG = re.compile(PATTERN)
RULE = "1 to 64 lowercase letters, digits and hyphens, starting with a letter or digit (for example init-reg-2027)"


class InvalidAssignmentId(ValueError):
    pass


def shown(value: object) -> str:
    """The value as a message may quote it: repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_assignment_id(value: object) -> bool:
    return isinstance(value, str) and _SLUG.fullmatch(value) is not None


def check_assignment_id(value: object, what: str = "assignment id") -> str:
    """`value` when it is a slug; InvalidAssignmentId saying what is wrong and what an id looks like otherwise."""
    if not is_assignment_id(value):
        raise InvalidAssignmentId(f"{shown(value)} is not a valid {what}: use {RULE}.")
    return value


def suggest(value: str) -> str:
    """A slug close to `value` (for the message that asks to rename a legacy id)."""
    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:64].strip("-")
    return slug or "assignment"
