"""Instructor logins against a real `labgrader serve` (service/login.py): an unknown email takes as long as a wrong
password, attempts beyond the limits per address and per account are answered 429 with Retry-After, and a flood
of wrong Basic-auth requests leaves /api/health fast. Client addresses come from X-Forwarded-For, which the API
trusts from 127.0.0.1 (LABGRADER_FORWARDED_ALLOW_IPS), as it would from a reverse proxy."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
from collections import Counter

import httpx
import pytest

from service.db import Database
from service.migrate import upgrade
from service.models import Instructor
from service.security import hash_password

from .kit import make_settings
from .processes import LABGRADER, Service, environment

PROF = ("prof@example.org", "correct horse")
SUBMISSIONS = "/api/instructor/assignments/init-reg/submissions"


@pytest.fixture
def start(tmp_path):
    """start(**settings): the API on SQLite with one instructor, stopped at the end."""
    services = []

    def _start(**overrides) -> Service:
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'labgrader.db'}", **overrides)
        upgrade(settings.sqlalchemy_url)
        with Database(settings.sqlalchemy_url) as db, db.session() as s:
            s.add(Instructor(email=PROF[0], password_hash=hash_password(PROF[1])))
        svc = Service(settings, tmp_path)
        services.append(svc)
        svc.start_api()
        return svc

    yield _start
    for svc in services:
        svc.stop()


def form_login(url: str, email: str, password: str, address: str = "192.0.2.1") -> httpx.Response:
    """The dashboard's login form, as a browser at `address` sends it (with the form's CSRF token)."""
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": address}) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def basic(url: str, email: str, password: str, address: str = "192.0.2.1") -> httpx.Response:
    return httpx.get(url + SUBMISSIONS, auth=(email, password), headers={"X-Forwarded-For": address}, timeout=60)


def test_an_unknown_email_takes_as_long_as_a_wrong_password(start):
    svc = start(login_limit_per_address=1000, login_limit_per_account=1000)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(5):  # interleaved, so that the machine's load falls on both alike
        for channel, call in (("form", form_login), ("basic", basic)):
            for email in ("nobody@example.org", PROF[0]):
                started = time.perf_counter()
                r = call(svc.url, email, "wrong password")
                times.setdefault((channel, email), []).append(time.perf_counter() - started)
                assert r.status_code == 401, r.text
    for channel in ("form", "basic"):
        unknown, known = (statistics.median(times[channel, e]) for e in ("nobody@example.org", PROF[0]))
        assert known > 0.02, f"{channel}: {known * 1000:.0f} ms: no Argon2 check made?"
        assert 0.6 < unknown / known < 1.65, f"{channel}: unknown {unknown * 1000:.0f} ms, known {known * 1000:.0f} ms"


@pytest.mark.slow  # waits out a rate-limit window or a flood
def test_attempts_beyond_the_limits_get_429_until_the_window_passes_or_the_password_is_set(start):
    svc = start(login_limit_per_address=8, login_limit_per_account=4)  # the defaults are 20 and 10 in 900 s
    for email, address in ((PROF[0], "198.51.100.1"), ("nobody@example.org", "198.51.100.2")):
        calls = [form_login, basic] * 2
        assert [call(svc.url, email, "wrong password", address).status_code for call in calls] == [401] * 4
        r = basic(svc.url, email, "wrong password", address)  # the 5th for this account: known or not, alike
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 901  # the default window, 900 s
        assert "Too many login attempts" in r.json()["detail"] and "create-instructor" in r.json()["detail"]
    r = form_login(svc.url, *PROF, address="198.51.100.3")  # the right password, from elsewhere: still refused
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "Too many login attempts" in r.text
    assert basic(svc.url, *PROF, address="198.51.100.3").status_code == 429

    # an administrator sets the password: the account may log in again at once
    cli = subprocess.run([*LABGRADER, "create-instructor", PROF[0], "--password", "a new password"],
                         env=environment(svc.settings), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert basic(svc.url, PROF[0], "a new password", "198.51.100.3").status_code == 200

    # one address, many accounts: the 9th attempt is refused, whatever the account
    address = "198.51.100.4"
    assert {basic(svc.url, f"guess{i}@example.org", "x", address).status_code for i in range(8)} == {401}
    assert basic(svc.url, "guess99@example.org", "x", address).status_code == 429
    assert basic(svc.url, PROF[0], "a new password", address).status_code == 429
    assert basic(svc.url, PROF[0], "a new password", "198.51.100.5").status_code == 200


@pytest.mark.slow  # waits out a rate-limit window or a flood
def test_health_stays_fast_during_a_flood_of_wrong_basic_auth(start):
    svc = start()

    async def flood() -> tuple[Counter, Counter, list[float]]:
        latencies: list[float] = []
        stop = asyncio.Event()

        async def health() -> None:
            async with httpx.AsyncClient(base_url=svc.url, timeout=60) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    assert (await client.get("/api/health")).status_code == 200
                    latencies.append(time.perf_counter() - started)
                    await asyncio.sleep(0.05)

        watcher = asyncio.create_task(health())
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=svc.url, timeout=60, limits=limits) as c:
            # one address, one account, 160 at once: 10 get a password check, the rest 429 at once
            here = {"X-Forwarded-For": "203.0.113.1"}
            one = await asyncio.gather(*(c.get(SUBMISSIONS, auth=(PROF[0], f"guess {i}"), headers=here)
                                         for i in range(160)))  # fmt: skip
        # new connections: one kept alive from the first burst may be closed by the server (idle 5 s) as it is used
        async with httpx.AsyncClient(base_url=svc.url, timeout=5, limits=limits) as c:
            # 60 addresses and accounts, under every limit: 60 Argon2 checks queue, 1 at a time (those beyond
            # 32 waiting are told to come back, 503); the client gives up waiting after 5 s
            many = await asyncio.gather(*(c.get(SUBMISSIONS, auth=(f"user{i}@example.org", "guess"),
                                                headers={"X-Forwarded-For": f"203.0.113.{10 + i}"})
                                          for i in range(60)), return_exceptions=True)  # fmt: skip
        stop.set()
        await watcher
        codes = Counter(getattr(r, "status_code", type(r).__name__) for r in many)
        return Counter(r.status_code for r in one), codes, latencies

    one, many, latencies = asyncio.run(flood())
    assert one == {401: 10, 429: 150}, one
    assert many[401] >= 5 and many[503] >= 10 and set(many) <= {401, 503, "ReadTimeout"}, many
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    assert len(latencies) > 50 and p99 < 1.0, f"health p99 {p99 * 1000:.0f} ms, median {statistics.median(latencies)}"
