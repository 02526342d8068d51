"""Property-based requests generated from the app's own OpenAPI schema (schemathesis): whatever a client sends,
with or without a valid token, the API answers without a server error and as its schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from service.api.app import create_app
from service.db import Database
from service.migrate import upgrade

from .kit import enroll, make_settings


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app with its lifespan running (database, storage, queue), one enrolled student and one submission."""
    folder = tmp_path_factory.mktemp("schemathesis")
    config = make_settings(folder, f"sqlite:///{folder / 'labgrader.db'}", rate_limit=10_000)
    upgrade(config.sqlalchemy_url)
    with Database(config.sqlalchemy_url) as db:
        (token,) = enroll(db, 1)
    app = create_app(config)
    with TestClient(app) as client:
        r = client.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                        files={"file": ("lab.py", b"x = 1\n")}, data={"assignment": "init-reg"})  # fmt: skip
        assert r.status_code == 202
        yield app, token


EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("authenticated", [True, False], ids=["student", "anonymous"])
def test_no_server_error_and_responses_match_the_schema(live_app, authenticated):
    app, token = live_app
    headers = {"Authorization": f"Bearer {token}"} if authenticated else None
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @EXAMPLES
        def call(case) -> None:
            case.call_and_validate(headers=headers)

        call()
