"""Assignment ids are slugs at every entry point (the CLI, the dashboard's forms and URLs, the API's fields, roster
imports, assignment files, the model itself); a database holding another id is refused until it is renamed; and
no page of the dashboard runs inline JavaScript or puts a value in a script (tests/test_service/
test_dashboard_browser.py shows the same in Chromium)."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from service.cli import main
from service.dashboard.routes import CSP, SCRIPTS, TEMPLATES
from service.db import Database
from service.ids import PATTERN, InvalidAssignmentId
from service.migrate import upgrade
from service.models import Assignment, Enrollment, Instructor, Student, Submission, utcnow
from service.portal.routes import ASSETS as PORTAL_ASSETS
from service.roster import RosterError, RosterRow, import_roster
from service.security import hash_password

from .kit import TINY, bearer, enroll, make_settings
from .processes import LABGRADER, environment

HOSTILE = "x');alert(1);//"
BAD = [HOSTILE, "Lab_2", "lab 2", "lab_2", "l" * 65, "", "<b>lab</b>"]
PROF = {"email": "prof@example.org", "password": "correct horse"}


def hostile_toml(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.toml"
    path.write_text(TINY.read_text().replace('id = "tiny"', f'id = "{HOSTILE}"'))
    return path


# -- the command line ----------------------------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch, tmp_path, database_url):
    monkeypatch.setenv("LABGRADER_DATABASE_URL", database_url)
    monkeypatch.setenv("LABGRADER_STORAGE_DIR", str(tmp_path / "storage"))
    return database_url.replace("postgresql://", "postgresql+psycopg://")


@pytest.mark.parametrize("bad", BAD)
def test_the_cli_refuses_an_id_that_is_not_a_slug(env, tmp_path, capsys, bad):
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\ns1,Ada\n")
    for argv in (["assignment", bad, "--config", str(TINY)], ["import-roster", str(roster), "--assignment", bad],
                 ["regrade", "--assignment", bad], ["rename-assignment", "init-reg", bad]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "is not a valid assignment id" in err and "lowercase letters, digits and hyphens" in err, argv
    assert not (tmp_path / "roster-tokens.csv").exists()


def test_an_assignment_file_whose_id_is_not_a_slug_is_refused(env, tmp_path, capsys):
    upgrade(env)
    assert main(["assignment", "lab2", "--config", str(hostile_toml(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "hostile.toml: its id" in err and "is not a valid assignment id" in err and "id = line" in err
    with Database(env) as db, db.session() as s:
        assert s.get(Assignment, "lab2") is None


def test_the_model_and_the_roster_import_refuse_it_too(db):
    with pytest.raises(InvalidAssignmentId, match="not a valid assignment id"):
        Assignment(id=HOSTILE, title="x")
    with db.session() as s, pytest.raises(RosterError, match="not a valid assignment id"):
        import_roster(s, [RosterRow("s1", "Ada", None)], HOSTILE)


def test_a_database_with_an_old_id_that_is_not_a_slug_is_refused_until_renamed(env, tmp_path, capsys):
    upgrade(env, "0004")  # before slugs: any id could get in (here through SQL, as the old CLI allowed)
    with Database(env) as db:
        (token,) = enroll(db, 1)
        with db.engine.begin() as c:
            c.execute(sa.text("INSERT INTO assignments (id, title, created_at, counting) VALUES (:id, 'Lab', :t, "
                              "'latest')"), {"id": HOSTILE, "t": utcnow()})  # fmt: skip
            c.execute(sa.text("INSERT INTO enrollments (student_pk, assignment_id) SELECT id, :id FROM students"),
                      {"id": HOSTILE})  # fmt: skip
        with db.engine.begin() as c:  # a row of that revision's columns (the model has later ones)
            c.execute(sa.text("INSERT INTO submissions (id, student_pk, assignment_id, filename, sha256, size_bytes, "
                              "created_at, late, status, generation, attempt, queued_at, progress, step) SELECT "
                              "'sub-1', id, :id, 'lab.py', :sha, 1, :t, false, 'queued', 1, 0, :t, 0, '' FROM "
                              "students"), {"id": HOSTILE, "sha": "0" * 64, "t": utcnow()})  # fmt: skip
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "assignment ids that are no longer accepted" in err and "labgrader rename-assignment" in err
    assert "x-alert-1" in err  # the suggested slug
    # `labgrader serve` (a real process) says the same and exits instead of starting
    settings = make_settings(tmp_path, env)
    serve = subprocess.run([*LABGRADER, "serve"], env=environment(settings), capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert serve.returncode == 2 and "rename-assignment" in serve.stderr and "Traceback" not in serve.stderr
    assert main(["rename-assignment", HOSTILE, "lab-one"]) == 0
    assert "is now 'lab-one', with its 1 students and 1 submissions" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    with Database(env) as db, db.session() as s:
        assert s.get(Assignment, HOSTILE) is None and s.get(Assignment, "lab-one").title == "Lab"
        assert s.get(Submission, "sub-1").assignment_id == "lab-one"
        assert [e.assignment_id for e in s.scalars(select(Enrollment).order_by(Enrollment.assignment_id))] == [
            "init-reg", "lab-one"]  # fmt: skip
    assert main(["rename-assignment", "nope", "lab-two"]) == 2
    assert "there is no assignment 'nope'" in capsys.readouterr().err
    assert main(["rename-assignment", "lab-one", "init-reg"]) == 2
    assert "exists already" in capsys.readouterr().err


# -- the API and the dashboard -------------------------------------------------------------------------------------
def test_the_api_refuses_an_id_that_is_not_a_slug(client, db):
    (token,) = enroll(db, 1)
    with db.session() as s:
        s.add(Instructor(email=PROF["email"], password_hash=hash_password(PROF["password"])))
    for bad in (HOSTILE, "Init-Reg", "-lab", "lab_2"):
        r = client.post("/api/submissions", headers=bearer(token), files={"file": ("lab.py", b"x = 1\n")},
                        data={"assignment": bad})  # fmt: skip
        assert r.status_code == 422 and "is not a valid assignment id" in r.json()["detail"], r.text
        r = client.get("/api/submissions", params={"assignment": bad}, headers=bearer(token))
        assert r.status_code == 422 and "lowercase letters" in r.json()["detail"]
        if "/" not in bad:  # an id with a slash does not even reach a route: 404
            r = client.get(f"/api/instructor/assignments/{bad}/submissions", auth=(PROF["email"], PROF["password"]))
            assert r.status_code == 422 and "is not a valid assignment id" in r.json()["detail"]
    schema = client.get("/openapi.json").json()  # the rule is documented where clients read it
    assert schema["paths"]["/api/submissions"]["get"]["parameters"][0]["schema"]["pattern"] == PATTERN
    assert schema["components"]["schemas"]["Body_submit_api_submissions_post"]["properties"]["assignment"][
        "pattern"] == PATTERN  # fmt: skip


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_dashboard_refuses_an_id_that_is_not_a_slug(client, db, settings, tmp_path):
    with db.session() as s:
        s.add(Instructor(email=PROF["email"], password_hash=hash_password(PROF["password"])))
    client.post("/login", data={**PROF, "csrf_token": csrf_of(client.get("/login").text)})
    csrf = csrf_of(client.get("/dashboard").text)
    for bad in (HOSTILE, "Lab_2"):
        r = client.post("/dashboard/assignments", data={"csrf_token": csrf, "id": bad})
        assert r.status_code == 200 and "is not a valid assignment id: use 1 to 64 lowercase letters" in r.text
    r = client.post("/dashboard/assignments", data={"csrf_token": csrf, "id": "lab2"},
                    files={"rubric": ("hostile.toml", hostile_toml(tmp_path).read_bytes())})  # fmt: skip
    assert "hostile.toml: its id" in r.text and "is not a valid assignment id" in r.text
    assert not (settings.storage_dir / "assignments" / "lab2.toml").exists()
    r = client.post("/dashboard/assignments/Lab_2/roster", data={"csrf_token": csrf},
                    files={"csv_file": ("r.csv", b"student_id,name\ns1,Ada\n")})  # fmt: skip
    assert r.status_code == 404 and "is not a valid assignment id" in r.json()["detail"]
    with db.session() as s:
        assert s.scalars(select(Assignment.id)).all() == ["init-reg"]


class ScriptsAndHandlers(HTMLParser):
    """Every <script> (its src and body) and every attribute that the browser would run as JavaScript."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str | None, str]] = []
        self.handlers: list[tuple[str, str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.handlers.append((tag, name, value or ""))
        if tag == "script":
            self.scripts.append((dict(attrs).get("src"), ""))
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            src, body = self.scripts[-1]
            self.scripts[-1] = (src, body + data)


def test_no_template_has_inline_javascript_or_a_value_in_a_script():
    allowed = {
        *(f"/dashboard/static/{name}" for name in SCRIPTS),
        "/dashboard/answers-static/grading.js",
        *(f"/student/static/{name}" for name, kind in PORTAL_ASSETS.items() if kind == "text/javascript"),
    }
    for path in sorted([*TEMPLATES.glob("*.j2"), *(TEMPLATES.parent / "portal").glob("*.j2")]):
        parser = ScriptsAndHandlers()
        parser.feed(path.read_text())
        assert parser.handlers == [], (path.name, parser.handlers)
        for src, body in parser.scripts:
            assert src in allowed and not body.strip(), (path.name, src)
        for attribute in re.findall(r"hx-(?:headers|vals|vars|on[\w:-]*)=('[^']*'|\"[^\"]*\")", path.read_text()):
            assert "{{" not in attribute or "| tojson" in attribute, (path.name, attribute)


def test_pages_full_of_hostile_text_run_no_inline_script(client, db, settings):
    """Every value an instructor or a student controls, hostile, on every page: still no inline script or handler,
    and the Content-Security-Policy that would stop one anyway."""
    with db.session() as s:
        s.add(Instructor(email=PROF["email"], password_hash=hash_password(PROF["password"])))
        s.get(Assignment, "init-reg").title = "</script><script>alert('title')</script>"
    with db.session() as s:
        import_roster(s, [RosterRow('u1" onmouseover="alert(3)', "<img src=x onerror=alert(2)>", None)], "init-reg")
    with db.engine.begin() as c:  # a legacy row that bypassed every check
        c.execute(sa.text("INSERT INTO assignments (id, title, created_at, counting) VALUES (:id, :id, :t, 'latest')"),
                  {"id": HOSTILE, "t": utcnow()})  # fmt: skip
    client.post("/login", data={**PROF, "csrf_token": csrf_of(client.get("/login").text)})
    with db.session() as s:
        student = s.scalar(select(Student)).id
    pages = ["/dashboard", "/dashboard/queue", "/dashboard/assignments/init-reg", "/dashboard/assignments/init-reg/"
             "overview", f"/dashboard/assignments/init-reg/students/{student}", "/login",
             f"/dashboard?err={HOSTILE}<script>alert(4)</script>"]  # fmt: skip
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP, url
        parser = ScriptsAndHandlers()
        parser.feed(r.text)
        assert parser.handlers == [] and all(not body.strip() for _, body in parser.scripts), (url, parser.handlers)
        assert "alert(" not in "".join(body for _, body in parser.scripts)
    assert 'data-confirm="Grade every submission of x&#39;);alert(1);// again?"' in client.get("/dashboard/queue").text
