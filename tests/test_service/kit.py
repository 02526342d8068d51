"""Helpers of the service tests: settings on a queue of the test's own, students with tokens, Redis commands."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import redis

from service.db import Database
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


def make_settings(tmp_path: Path, database_url: str, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "storage_dir": tmp_path / "storage",
        "broker_url": REDIS,
        "queue": f"test-{uuid.uuid4().hex[:10]}",  # each test has a queue of its own on the shared Redis
        "sweep_interval_seconds": 0,  # tests sweep when they mean to
    }
    return Settings(**(values | overrides))


def add_tiny_assignment(db: Database) -> None:
    with db.session() as s:
        s.add(Assignment(id="tiny", title="service tests", config_path=str(TINY)))


def enroll(db: Database, n: int, assignment: str = "init-reg", prefix: str = "s") -> list[str]:
    """n students on the roster of `assignment`; their tokens, in order."""
    rows = [RosterRow(f"{prefix}{i}", f"Student {prefix}{i}", None) for i in range(n)]
    with db.session() as s:
        return [i.token for i in import_roster(s, rows, assignment)]


def redis_do(command: str, *args):
    """One command on the tests' Redis, on a connection that is closed afterwards."""
    with redis.Redis.from_url(REDIS) as r:
        return getattr(r, command)(*args)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
