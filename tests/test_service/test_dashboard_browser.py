"""The dashboard in Chromium (Playwright, Debian's /usr/bin/chromium), as an instructor uses it, against the real
API and worker processes: log in, import a roster, watch a submission go from queued to graded without reloading,
open its report, sort and filter, export CSV, regrade, log out; and nobody else gets in. Screenshots of each page
go to the test's folder (and to LABGRADER_SCREENSHOTS when set)."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect, sync_playwright

from service.db import Database
from service.migrate import upgrade
from service.models import Instructor, utcnow
from service.roster import RosterRow, import_roster
from service.security import hash_password

from .kit import add_tiny_assignment, make_settings
from .processes import Service

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
PROF = ("prof@example.org", "correct horse")
ROSTER = b"student_id,name,email\nu01,Ada Lovelace,ada@example.org\nu02,Alan Turing,\nu03,Grace Hopper,\n"


@pytest.fixture
def service(tmp_path, postgres_url):
    settings = make_settings(tmp_path, postgres_url, heartbeat_seconds=0.5, sweep_interval_seconds=1)
    upgrade(settings.sqlalchemy_url)
    with Database(settings.sqlalchemy_url) as db:
        add_tiny_assignment(db)
        with db.session() as s:
            s.add(Instructor(email=PROF[0], password_hash=hash_password(PROF[1])))
    svc = Service(settings, tmp_path)
    svc.start_api()
    yield svc
    svc.stop()


@pytest.fixture
def browser_page(tmp_path):
    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
        yield context.new_page()
        context.close()
        browser.close()


def shot(page: Page, name: str, folder: Path) -> None:
    for target in filter(None, (folder, os.environ.get("LABGRADER_SCREENSHOTS"))):
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next=/dashboard$"))
    page.fill("input[name=email]", PROF[0])
    page.fill("input[name=password]", PROF[1])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/dashboard")


def test_an_instructor_runs_an_assignment_in_the_browser(service, browser_page, tmp_path):
    page, url = browser_page, service.url
    log_in(page, url)
    expect(page.locator("table")).to_contain_text("tiny")
    shot(page, "1-assignments", tmp_path)

    page.click("a[href='/dashboard/assignments/tiny']")
    page.set_input_files("input[name=csv_file]", {"name": "roster.csv", "mimeType": "text/csv", "buffer": ROSTER})
    page.click("form[action$='/roster'] button[type=submit]")
    expect(page.locator("#tokens tbody tr")).to_have_count(3)
    shot(page, "2-tokens", tmp_path)
    tokens = dict(zip(page.locator("#tokens tbody td:first-child").all_inner_texts(),
                      page.locator("#tokens tbody code").all_inner_texts(), strict=True))  # fmt: skip

    service.start_worker()
    headers = {"Authorization": f"Bearer {tokens['u02']}"}
    r = httpx.post(f"{url}/api/submissions", headers=headers, data={"assignment": "tiny"},
                   files={"file": ("draft.py", b'"""Nothing defined yet."""\n')})  # fmt: skip
    assert r.status_code == 202
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/dashboard/assignments/tiny/" in request.url
            else None)  # fmt: skip
    page.goto(f"{url}/dashboard/assignments/tiny")
    row = page.locator("tr[data-student=u02]")
    expect(row.locator(".badge").first).to_have_text(re.compile("queued|running|done"))
    expect(row.locator(".badge").first).to_have_text("done", timeout=90_000)  # htmx polls the table: no reload
    expect(row).to_contain_text("0")
    expect(page.locator("#live")).not_to_have_attribute("hx-trigger", re.compile("."))  # nothing live: it stops
    assert polls and all("/live?since=" in u for u in polls), polls  # one request per poll for the whole table
    shot(page, "3-grades", tmp_path)

    page.click("th a[data-sort=total]")
    page.click("th a[data-sort=total]")  # highest first; students without a submission stay last
    expect(page.locator("tbody tr").first).to_have_attribute("data-student", "u02")
    page.select_option("select[name=filter]", "not_submitted")
    expect(page.locator("tbody tr[data-student]")).to_have_count(2)
    page.fill("input[name=q]", "grace")
    page.click("form.toolbar button")
    expect(page.locator("tbody tr[data-student]")).to_have_count(1)
    expect(page.locator("tbody tr[data-student]")).to_have_attribute("data-student", "u03")

    page.goto(f"{url}/dashboard/assignments/tiny")
    with page.expect_download() as download:
        page.click("text=CSV >> nth=0")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["student_id"], r["status"], r["score"]) for r in rows] == [
        ("u01", "not submitted", ""), ("u02", "done", "0"), ("u03", "not submitted", "")]  # fmt: skip

    page.click("text=Alan Turing")
    viewer = page.locator("object.pdf")
    expect(viewer).to_be_visible()
    table, pdf = page.locator("#submissions-wrap").bounding_box(), viewer.bounding_box()
    assert table["y"] + table["height"] <= pdf["y"], (table, pdf)  # at 1366 px: the table above the viewer
    regrade = page.locator("#submissions button:has-text('Regrade')").first.bounding_box()
    assert regrade["x"] + regrade["width"] <= min(table["x"] + table["width"], 1366), (regrade, table)
    expect(page.locator("#submissions")).to_contain_text("draft.py")
    report = page.request.get(url + viewer.get_attribute("data"))
    assert report.ok and report.body().startswith(b"%PDF")
    shot(page, "4-student", tmp_path)
    page.click("#submissions button:has-text('Regrade')")
    expect(page.locator(".flash.ok")).to_contain_text("queued for regrading")
    expect(page.locator("#submissions .badge.st").first).to_have_text(re.compile("queued|running|done"))
    polls.clear()
    # the page polls once for all its submissions (/students/{pk}/live) and reloads itself once the regrade is done
    expect(page.locator("#submissions .badge.st").first).to_have_text("done", timeout=90_000)
    expect(page.locator("object.pdf")).to_be_visible()
    expect(page.locator("#student-live")).to_have_count(0)  # nothing live: no poll any more
    polled = [u for u in polls if "/live" in u]
    assert all(re.search(r"/students/\d+/live", u) for u in polled), polls

    page.goto(f"{url}/dashboard/assignments/tiny/overview")
    expect(page.locator("img[alt='score distribution']")).to_be_visible()
    shot(page, "5-overview", tmp_path)
    page.goto(f"{url}/dashboard/queue")
    expect(page.locator("#workers")).to_contain_text("labgrader-")
    shot(page, "6-queue", tmp_path)

    page.click("header button:has-text('Log out')")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{url}/dashboard/queue")
    expect(page).to_have_url(re.compile(r"/login\?next=/dashboard/queue$"))


def test_nobody_else_gets_in(service, browser_page, tmp_path):
    page, url = browser_page, service.url
    for path in ("/dashboard", "/dashboard/assignments/tiny", "/dashboard/queue",
                 "/dashboard/assignments/tiny/export.csv"):  # fmt: skip
        response = page.goto(f"{url}{path}")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        assert "Log in" in response.text()
    page.fill("input[name=email]", PROF[0])
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".flash.err")).to_have_text("Wrong email or password.")
    shot(page, "0-login-refused", tmp_path)
    r = page.request.post(f"{url}/dashboard/assignments/tiny/regrade", form={"csrf_token": "forged"},
                          max_redirects=0)  # fmt: skip
    assert r.status in (303, 403)


def test_hostile_ids_titles_and_names_run_no_script(service, browser_page, tmp_path):
    """The attacker's assignment id (a row from before ids were slugs), a title that closes a script and a student
    name with an event handler, on the pages that show them: the only dialog is the confirmation, quoting the id
    as text."""
    page, url = browser_page, service.url
    hostile = "x');alert(1);//"
    with Database(service.settings.sqlalchemy_url) as db:
        with db.engine.begin() as c:  # inserted as it was before slugs; no entry point accepts it now
            row = {"id": hostile, "title": "</script><script>alert(5)</script>", "t": utcnow()}
            c.execute(sa.text("INSERT INTO assignments (id, title, created_at, counting) VALUES (:id, :title, :t, "
                              "'latest')"), row)  # fmt: skip
        with db.session() as s:
            import_roster(s, [RosterRow("u9", "<img src=x onerror=alert(2)>", None)], "tiny")
    dialogs: list[tuple[str, str]] = []
    accept = {"value": False}

    def answer(dialog) -> None:
        dialogs.append((dialog.type, dialog.message))
        dialog.accept() if accept["value"] else dialog.dismiss()

    page.on("dialog", answer)
    log_in(page, url)
    expect(page.locator("table")).to_contain_text("</script><script>alert(5)</script>")
    page.goto(f"{url}/dashboard/assignments/tiny")
    expect(page.locator("tr[data-student=u9] td").first).to_have_text("<img src=x onerror=alert(2)>")
    page.select_option("select[name=filter]", "not_submitted")  # dashboard.js submits the filter
    expect(page).to_have_url(re.compile(r"filter=not_submitted"))
    page.goto(f"{url}/dashboard/queue")
    page.locator("#counts tr", has_text=hostile).locator("button").click()
    page.wait_for_timeout(500)
    assert dialogs == [("confirm", f"Grade every submission of {hostile} again?")]
    expect(page).to_have_url(f"{url}/dashboard/queue")  # dismissed: nothing was sent
    accept["value"] = True
    page.locator("#counts tr", has_text="tiny").locator("button").click()
    expect(page.locator(".flash.ok")).to_contain_text("submissions of tiny queued for regrading")
    assert dialogs[1:] == [("confirm", "Grade every submission of tiny again?")]
    shot(page, "7-hostile-queue", tmp_path)
