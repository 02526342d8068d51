"""Alembic, driven from code: `labgrader migrate`, the API at start-up and the tests all call upgrade()."""

from __future__ import annotations

import shlex
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from service.db import make_engine
from service.ids import RULE, is_assignment_id, shown, suggest

MIGRATIONS = Path(__file__).parent / "migrations"


class MigrationRefused(RuntimeError):
    """The database holds something the new schema forbids; the message says how to fix it."""


def check_assignment_ids(connection: sa.Connection) -> None:
    """MigrationRefused when an assignment id is not a slug (ids from before revision 0005 could be anything, and
    an id lands in URLs, HTML attributes and file names). The operator renames each with `labgrader
    rename-assignment OLD NEW`, which works on the database as it is, and migrates again."""
    if not sa.inspect(connection).has_table("assignments"):
        return
    bad = [i for i in connection.scalars(sa.text("SELECT id FROM assignments ORDER BY id")) if not is_assignment_id(i)]
    if bad:
        fixes = "; ".join(f"labgrader rename-assignment {shlex.quote(i)} {suggest(i)}" for i in bad[:10])
        raise MigrationRefused(
            f"the database has assignment ids that are no longer accepted: {', '.join(shown(i) for i in bad)}. "
            f"An id must be {RULE}. Rename each (students then submit to the new id): {fixes}; then run the "
            "command again."
        )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (creating it, with the default assignment, when new)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            check_assignment_ids(connection)  # before any revision runs: SQLite would keep a half-applied one
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
