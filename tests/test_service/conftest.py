"""Service fixtures: a migrated database (SQLite file or a fresh PostgreSQL database on the machine's server),
a private storage folder, a queue of its own on the machine's Redis, and the app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.db import Database
from service.migrate import upgrade
from service.settings import Settings

from .kit import POSTGRES, make_settings, redis_do


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the machine's PostgreSQL, dropped afterwards."""
    name = f"lg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labgrader.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(tmp_path, database_url) -> Iterator[Settings]:
    s = make_settings(tmp_path, database_url)
    upgrade(s.sqlalchemy_url)
    yield s
    redis_do("delete", s.queue)


@pytest.fixture
def db(settings) -> Iterator[Database]:
    database = Database(settings.sqlalchemy_url)
    yield database
    database.dispose()


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
