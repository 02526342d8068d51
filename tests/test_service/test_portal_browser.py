"""The student portal in Chromium (Playwright, Debian's /usr/bin/chromium) against the real API and worker
processes, as students use it: sign in with the token, drop a file on the upload box, watch the grading finish
without reloading, read the reason of a failed file and the report of a good one, answer the written questions;
and a second student sees none of it. Screenshots of each page at 1366x768 and at a phone's 390x844 go to the
test's folder (and to LABGRADER_SCREENSHOTS when set)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from grader.assignment import DEFAULT_ASSIGNMENT
from service.db import Database
from service.migrate import upgrade
from service.models import Assignment, Instructor
from service.roster import RosterRow, import_roster
from service.security import hash_password

from .kit import TINY, make_settings
from .processes import Service
from .test_dashboard_browser import CHROMIUM, FLAGS, PROF, log_in, shot

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference_solution.py"
SIZES = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
pytestmark = pytest.mark.slow


def lab_with_questions(folder: Path) -> Path:
    """The tiny lab (budgets of seconds) with the default lab's written questions."""
    default = DEFAULT_ASSIGNMENT.read_text()
    questions = default[default.index("[[questions]]") : default.index("\n# Development only")]
    path = folder / "lab.toml"
    path.write_text(TINY.read_text().replace('id = "tiny"', 'id = "lab"', 1) + "\n" + questions)
    return path


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'labgrader.db'}", heartbeat_seconds=0.5,
                             sweep_interval_seconds=1)  # fmt: skip
    upgrade(settings.sqlalchemy_url)
    with Database(settings.sqlalchemy_url) as db, db.session() as s:
        s.add(Assignment(id="lab", title="Lab 3: initialization & regularization",
                         config_path=str(lab_with_questions(tmp_path))))  # fmt: skip
        s.flush()
        issued = import_roster(s, [RosterRow("u01", "Ada Lovelace", None), RosterRow("u02", "Alan Turing", None)],
                               "lab")  # fmt: skip
        tokens = [i.token for i in issued]
        s.add(Instructor(email=PROF[0], password_hash=hash_password(PROF[1])))
    svc = Service(settings, tmp_path)
    svc.start_api()
    svc.start_worker()
    yield svc, tokens
    svc.stop()


@pytest.fixture
def browser():
    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def shots(browser, url: str, token: str, paths: list[tuple[str, str]], folder: Path) -> None:
    """Each page at both sizes, in a session of its own."""
    for size, viewport in SIZES.items():
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        sign_in(page, url, token)
        for name, path in paths:
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            shot(page, f"portal-{name}-{size}", folder)
            # nothing sticks out sideways: the page is as wide as the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1, (name, size)
        context.close()


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url)
    expect(page).to_have_url(f"{url}/student")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your assignments")
    assert token not in page.url


def drop(page: Page, name: str, source: str) -> None:
    """Drag a file from the desktop onto the upload box."""
    data = page.evaluate_handle(
        "([name, text]) => { const dt = new DataTransfer(); "
        "dt.items.add(new File([text], name, {type: 'text/x-python'})); return dt; }", [name, source])  # fmt: skip
    page.dispatch_event("label.drop", "drop", {"dataTransfer": data})


def test_a_student_submits_follows_reads_and_answers(service, browser, tmp_path):
    svc, (ada, alan) = service
    url = svc.url
    context = browser.new_context(viewport=SIZES["desktop"])
    page = context.new_page()
    page.goto(url)
    shot(page, "portal-0-signin-desktop", tmp_path)
    page.fill("#token", "lg_not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".flash.err")).to_contain_text("not known")
    sign_in(page, url, ada)
    shot(page, "portal-1-home-desktop", tmp_path)
    page.click("a.button:has-text('Submit and answer')")
    expect(page.locator("#left")).to_contain_text("20 of 20")

    # a file that does not parse: the reason, in one sentence at the top, names the student's file
    drop(page, "lab3_ada.py", "def circle_model(sigma)\n    return None\n")
    expect(page).to_have_url(re.compile(r"/student/submissions/"))
    expect(page.locator("#live .badge")).to_have_text(re.compile("^(not graded|graded)$"), timeout=90_000)
    expect(page.locator("#summary")).to_contain_text("lab3_ada.py")
    shot(page, "portal-2-failed-desktop", tmp_path)

    # the reference, by the button: queued -> grading -> graded, followed without reloading
    page.click("a:has-text('Lab 3')")
    page.set_input_files("#file", str(REFERENCE))
    expect(page.locator("#chosen")).to_contain_text("reference_solution.py")
    page.click("#send")
    expect(page).to_have_url(re.compile(r"/student/submissions/"))
    seen = set()
    for _ in range(240):
        seen.add(page.locator("#live .badge").inner_text())
        if "graded" in seen:
            break
        page.wait_for_timeout(500)
    assert {"grading", "graded"} <= seen, seen  # the badge changed in place
    expect(page.locator("#checks")).to_contain_text("Part 3: dropout")
    expect(page.locator("#report a:has-text('Download the PDF')")).to_be_visible()
    report = page.locator("#report iframe.report, #report object.report")
    expect(report).to_be_visible()
    width = report.bounding_box()["width"]
    assert width > 1000, width  # the report is read at the page's full width
    pdf = page.request.get(url + page.locator("#report a:has-text('Download the PDF')").get_attribute("href"))
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    shot(page, "portal-3-graded-desktop", tmp_path)
    graded = page.url.removeprefix(url)

    # written answers: typed, saved as a draft while typing, then submitted
    page.click("a:has-text('Lab 3')")
    boxes = page.locator("#answer-form textarea")
    expect(boxes).to_have_count(5)
    boxes.nth(0).fill("small 0.01 (slow start), good 1, big 10 (never recovers)")
    expect(page.locator("#autosave")).to_contain_text("Draft saved", timeout=10_000)
    page.reload()
    expect(boxes.nth(0)).to_have_value("small 0.01 (slow start), good 1, big 10 (never recovers)")
    boxes.nth(4).fill("K = 100 passes beat eval mode by a little")
    page.click("button[value=submit]")
    expect(page.locator(".flash.ok")).to_have_text("Your answers are submitted.")
    expect(page.locator("#state_sigma_regimes")).to_contain_text("Submitted")
    shot(page, "portal-4-answers-desktop", tmp_path)
    context.close()

    shots(browser, url, ada, [("home", "/student"), ("assignment", "/student/assignments/lab"), ("graded", graded)],
          tmp_path)  # fmt: skip

    # a second student: none of it
    context = browser.new_context(viewport=SIZES["desktop"])
    other = context.new_page()
    sign_in(other, url, alan)
    expect(other.locator("body")).not_to_contain_text("lab3_ada.py")
    other.click("a.button:has-text('Submit and answer')")
    expect(other.locator("#answer-form textarea").nth(0)).to_have_value("")
    for path in (graded, f"{graded}/report.pdf", f"{graded}/result.json", f"{graded}/status"):
        assert other.request.get(url + path).status == 404, path  # Ada's submission, as if it did not exist
    context.close()


def test_an_instructor_grades_the_answers_from_the_keyboard(service, browser, tmp_path):
    svc, (ada, alan) = service
    url = svc.url
    student = browser.new_context(viewport=SIZES["desktop"]).new_page()
    for token, text in ((ada, "0.01 slow, 1 good, 10 big; loss at init 0.69 = ln 2"), (alan, "sigma 1 is fine")):
        sign_in(student, url, token)
        student.goto(f"{url}/student/assignments/lab")
        student.locator("#answer-form textarea").nth(0).fill(text)
        student.click("button[value=submit]")
        expect(student.locator(".flash.ok")).to_have_text("Your answers are submitted.")
        student.click("header button:has-text('Sign out')")

    page = browser.new_context(viewport=SIZES["desktop"]).new_page()
    log_in(page, url)
    page.goto(f"{url}/dashboard/assignments/lab/answers")
    expect(page.locator(".stat")).to_contain_text("2 students wait")
    shot(page, "grading-0-index-desktop", tmp_path)
    page.click("#start")
    expect(page.locator("h1")).to_contain_text("Ada Lovelace")
    expect(page.locator(".question").first).to_contain_text("loss at init 0.69 = ln 2")
    page.locator(".question").first.locator("button.level").first.focus()
    page.keyboard.press("1")  # the first rubric level: 4 points
    expect(page.locator("#points_sigma_regimes")).to_have_value("4")
    page.fill("input[name=comment_sigma_regimes]", "clear, with the loss at init")
    shot(page, "grading-1-student-desktop", tmp_path)
    page.keyboard.press("Control+Enter")  # saved, and on to the next student who waits
    expect(page.locator("h1")).to_contain_text("Alan Turing")
    expect(page.locator(".flash.ok")).to_contain_text("Saved Ada Lovelace's grades.")
    page.fill("#points_sigma_regimes", "1.5")
    page.keyboard.press("Control+Enter")
    expect(page).to_have_url(re.compile(r"/dashboard/assignments/lab/answers\?"))
    expect(page.locator(".flash.ok")).to_contain_text("Every submitted answer is graded.")
    expect(page.locator("tr[data-student=u01]")).to_contain_text("4")

    sign_in(student, url, ada)
    student.goto(f"{url}/student/assignments/lab")
    expect(student.locator(".question").first.locator(".graded")).to_have_text("4 / 4: clear, with the loss at init")
