"""Settings: read from LABGRADER_* variables, and every one of them documented in the README's table."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table_and_nothing_else_is():
    rows = re.findall(r"^\| `LABGRADER_(\w+)` \|", README.read_text(), flags=re.MULTILINE)
    assert sorted(r.lower() for r in rows) == sorted(Settings.model_fields)


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LABGRADER_DATABASE_URL", "postgresql://u:p@db:5432/lab")
    monkeypatch.setenv("LABGRADER_RATE_LIMIT", "3")
    monkeypatch.setenv("LABGRADER_FAST", "true")
    s = Settings()
    assert (s.sqlalchemy_url, s.rate_limit, s.fast) == ("postgresql+psycopg://u:p@db:5432/lab", 3, True)


def test_the_default_database_is_sqlite_in_the_storage_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("LABGRADER_DATABASE_URL", raising=False)
    monkeypatch.setenv("LABGRADER_STORAGE_DIR", str(tmp_path))
    assert Settings().sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'labgrader.db'}"


def test_a_grading_gets_its_share_of_the_cpus(monkeypatch):
    from grader.device import cpu_count
    from service.jobs import grading_cpus

    for name in ("LABGRADER_GRADING_CPUS", "LABGRADER_WORKER_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    assert grading_cpus(Settings()) == cpu_count()
    monkeypatch.setenv("LABGRADER_WORKER_CONCURRENCY", str(2 * cpu_count()))
    assert grading_cpus(Settings()) == 1  # never zero
    monkeypatch.setenv("LABGRADER_GRADING_CPUS", "3")
    assert grading_cpus(Settings()) == 3  # the operator's word wins


def test_a_negative_cpu_share_is_refused_with_the_variable_named(monkeypatch):
    import pydantic
    import pytest

    monkeypatch.setenv("LABGRADER_GRADING_CPUS", "-1")
    with pytest.raises(pydantic.ValidationError, match="grading_cpus"):
        Settings()
