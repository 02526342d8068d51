"""The torch-free catalog of checks names the same checks, in the same order, as the checks themselves."""

from grader.catalog import CATALOG
from grader.checks import CHECKS


def test_catalog_matches_the_checks():
    assert tuple((c.id, c.title) for c in CHECKS) == CATALOG
