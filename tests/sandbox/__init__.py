"""Tests of grader.sandbox (a package, so that its modules do not clash with other test folders)."""
