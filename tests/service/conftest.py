"""Service fixtures: a migrated database (SQLite file or a fresh PostgreSQL database on the machine's server),
a private storage folder, a queue of its own on the machine's Redis, and students with tokens."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.db import Database
from service.migrate import upgrade
from service.models import Assignment
from service.roster import RosterRow, import_roster
from service.settings import Settings

HERE = Path(__file__).resolve().parent
TINY = HERE / "assignments" / "tiny.toml"
SUBMISSIONS_DIR = HERE.parent / "submissions"
POSTGRES = os.environ.get("LABGRADER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("LABGRADER_TEST_REDIS", "redis://127.0.0.1:6379/9")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def make_settings(tmp_path: Path, database_url: str, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "storage_dir": tmp_path / "storage",
        "broker_url": REDIS,
        "queue": f"test-{uuid.uuid4().hex[:10]}",  # each test has a queue of its own on the shared Redis
        "sweep_interval_seconds": 0,  # tests sweep when they mean to
    }
    return Settings(**(values | overrides))


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


def add_tiny_assignment(db: Database) -> None:
    with db.session() as s:
        s.add(Assignment(id="tiny", title="service tests", config_path=str(TINY)))


def enroll(db: Database, n: int, assignment: str = "init-reg", prefix: str = "s") -> list[str]:
    """n students on the roster of `assignment`; their tokens, in order."""
    rows = [RosterRow(f"{prefix}{i}", f"Student {prefix}{i}", None) for i in range(n)]
    with db.session() as s:
        return [i.token for i in import_roster(s, rows, assignment)]


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def redis_do(command: str, *args):
    """One command on the tests' Redis, on a connection that is closed afterwards."""
    with redis.Redis.from_url(REDIS) as r:
        return getattr(r, command)(*args)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
