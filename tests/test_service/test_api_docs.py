"""/docs and /redoc work offline: every script, style sheet and icon they load comes from this server (no CDN),
and each of those answers 200 with JavaScript or CSS."""

from __future__ import annotations

import re

import pytest

URL = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|(?:url|validatorUrl)\s*:\s*["']([^"']+)["']""")


def referenced(html: str) -> list[str]:
    return [a or b for a, b in URL.findall(html)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_same_site_files_that_answer(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = referenced(r.text)
    assert "/openapi.json" in urls
    assets = [u for u in urls if u != "/openapi.json"]
    assert any(u.endswith(".js") for u in assets), urls
    if page == "/docs":
        assert any(u.endswith(".css") for u in assets), urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from another site"
    assert "cdn" not in r.text.lower() and "fonts.googleapis" not in r.text and "https://" not in r.text
    for url in assets:
        answer = client.get(url)
        assert answer.status_code == 200, url
        kind = answer.headers["content-type"]
        if url.endswith(".js"):
            assert kind.startswith("text/javascript") and len(answer.content) > 100_000, (url, kind)
        elif url.endswith(".css"):
            assert kind.startswith("text/css") and b"swagger-ui" in answer.content, (url, kind)
        else:
            assert kind.startswith("image/"), (url, kind)
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_the_docs_files_are_served(client):
    for name in ("../app.py", "..%2F..%2Fpyproject.toml", "core.py", "nope.js"):
        assert client.get(f"/docs/static/{name}").status_code == 404, name
    assert client.get("/docs/oauth2-redirect").status_code == 200


@pytest.mark.slow  # a real API process and Chromium (about 10 s)
def test_the_docs_render_in_chromium_with_every_other_site_unreachable(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from service.migrate import upgrade

    from .kit import make_settings
    from .processes import Service
    from .test_dashboard_browser import CHROMIUM, FLAGS

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'labgrader.db'}")
    upgrade(settings.sqlalchemy_url)
    svc = Service(settings, tmp_path)
    svc.start_api()
    elsewhere: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()

            def offline(route):  # as on a machine without the internet: only this server answers
                if route.request.url.startswith(svc.url):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.goto(f"{svc.url}/docs")
            expect(
                page.locator(".opblock-summary-path", has_text="/api/submissions/{submission_id}").first
            ).to_be_visible(timeout=20_000)
            page.goto(f"{svc.url}/redoc")
            expect(page.get_by_text("Submit a solution of the initialization").first).to_be_visible(timeout=20_000)
            browser.close()
    finally:
        svc.stop()
    # ReDoc's bundle asks for its maker's logo in the sidebar and drops the image when that fails (onError); the
    # page does not depend on it. Nothing else goes elsewhere.
    assert [u for u in elsewhere if u != "https://cdn.redoc.ly/redoc/logo-mini.svg"] == [], elsewhere
