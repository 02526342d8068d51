"""Dashboard sessions end on the server (a session version in the database and in the signed cookie): a cookie
saved before a logout or a password change is refused afterwards, against a real `labgrader serve`."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from service.db import Database
from service.migrate import upgrade
from service.models import Instructor
from service.security import hash_password

from .kit import make_settings
from .processes import LABGRADER, Service, environment

PROF = ("prof@example.org", "correct horse")
COOKIE = "labgrader_session"


@pytest.fixture
def api(tmp_path, postgres_url):
    settings = make_settings(tmp_path, postgres_url)
    upgrade(settings.sqlalchemy_url)
    with Database(settings.sqlalchemy_url) as db, db.session() as s:
        s.add(Instructor(email=PROF[0], password_hash=hash_password(PROF[1])))
    svc = Service(settings, tmp_path)
    svc.start_api()
    yield svc
    svc.stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(url: str, password: str = PROF[1]) -> tuple[httpx.Client, str]:
    """A browser that logged in; and its session cookie, as an attacker would copy it."""
    client = httpx.Client(base_url=url)
    r = client.post(
        "/login", data={"email": PROF[0], "password": password, "csrf_token": csrf_of(client.get("/login").text)}
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard", r.text
    return client, client.cookies[COOKIE]


def replay(url: str, cookie: str) -> httpx.Response:
    with httpx.Client(base_url=url, cookies={COOKIE: cookie}) as client:
        return client.get("/dashboard/queue")


def test_a_cookie_saved_before_logout_opens_nothing_after_it(api):
    browser, saved = log_in(api.url)
    other, other_saved = log_in(api.url)  # the same instructor on a second browser
    assert replay(api.url, saved).status_code == 200
    r = browser.post("/logout", data={"csrf_token": csrf_of(browser.get("/dashboard").text)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    for cookie in (saved, other_saved):  # a logout ends the instructor's sessions on every browser
        r = replay(api.url, cookie)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/dashboard/queue"
    assert other.get("/dashboard").status_code == 303
    again, fresh = log_in(api.url)  # logging in again works, with a new cookie
    assert replay(api.url, fresh).status_code == 200
    for client in (browser, other, again):
        client.close()


def test_a_password_change_ends_every_session(api):
    browser, saved = log_in(api.url)
    assert replay(api.url, saved).status_code == 200
    cli = subprocess.run([*LABGRADER, "create-instructor", PROF[0], "--password", "another horse"],
                         env=environment(api.settings), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cli.returncode == 0 and "sessions ended" in cli.stdout, cli.stderr
    r = replay(api.url, saved)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert browser.get("/dashboard").status_code == 303
    with httpx.Client(base_url=api.url) as client:
        token = csrf_of(client.get("/login").text)
        assert (
            client.post("/login", data={"email": PROF[0], "password": PROF[1], "csrf_token": token}).status_code == 401
        )
    again, fresh = log_in(api.url, "another horse")
    assert replay(api.url, fresh).status_code == 200
    for client in (browser, again):
        client.close()
