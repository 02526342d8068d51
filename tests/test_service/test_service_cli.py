"""The administration commands of `labgrader`, run in-process against a real database."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import select

from service.cli import main
from service.db import Database
from service.models import Assignment, Enrollment, Instructor, Student
from service.security import token_hash, verify_password


@pytest.fixture
def env(monkeypatch, tmp_path, database_url):
    monkeypatch.setenv("LABGRADER_DATABASE_URL", database_url)
    monkeypatch.setenv("LABGRADER_STORAGE_DIR", str(tmp_path / "storage"))
    with Database(database_url.replace("postgresql://", "postgresql+psycopg://")) as db:
        yield db


def read_tokens(path) -> dict[str, dict[str, str]]:
    with path.open() as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def test_migrate_creates_the_default_assignment_and_is_idempotent(env, capsys):
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0
    with env.session() as s:
        assert s.get(Assignment, "init-reg").title == "Initialization & regularization"
    assert "up to date" in capsys.readouterr().out


def test_import_roster_issues_tokens_once_and_reissues_on_request(env, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email\ns1,Ada Lovelace,ada@example.org\ns2,Alan Turing,\n")
    assert main(["import-roster", str(roster), "--assignment", "init-reg"]) == 0
    first = read_tokens(tmp_path / "roster-tokens.csv")
    assert {r["status"] for r in first.values()} == {"new"}
    with env.session() as s:
        ada = s.scalar(select(Student).where(Student.student_id == "s1"))
        assert ada.token_hash == token_hash(first["s1"]["token"]) != first["s1"]["token"]  # only the hash is kept
        assert s.get(Enrollment, (ada.id, "init-reg")) is not None
    roster.write_text("student_id,name\ns1,Ada King\ns3,Grace Hopper\n")
    assert main(["import-roster", str(roster), "--assignment", "init-reg", "--out", str(tmp_path / "t2.csv")]) == 0
    second = read_tokens(tmp_path / "t2.csv")
    assert (second["s1"]["status"], second["s1"]["token"], second["s3"]["status"]) == ("kept", "", "new")
    assert main(["import-roster", str(roster), "--assignment", "init-reg", "--reissue", "--out",
                 str(tmp_path / "t3.csv")]) == 0  # fmt: skip
    third = read_tokens(tmp_path / "t3.csv")
    assert third["s1"]["status"] == "reissued" and third["s1"]["token"] != first["s1"]["token"]
    with env.session() as s:
        ada = s.scalar(select(Student).where(Student.student_id == "s1"))
        assert ada.name == "Ada King" and ada.token_hash == token_hash(third["s1"]["token"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("id,name\n1,A\n", "no column student_id"),
        ("student_id,name\ns1,A\ns1,B\n", "appears twice"),
        ("student_id,name\ns1,\n", "Line 2"),
        ("student_id,name\n", "no students"),
    ],
)
def test_a_bad_roster_is_refused_with_the_line_to_fix(env, tmp_path, capsys, content, words):
    roster = tmp_path / "roster.csv"
    roster.write_text(content)
    assert main(["import-roster", str(roster), "--assignment", "init-reg"]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "roster-tokens.csv").exists()


def test_import_roster_into_an_unknown_assignment_writes_nothing(env, tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\ns1,A\n")
    assert main(["import-roster", str(roster), "--assignment", "nope"]) == 2
    assert "no assignment 'nope' (known: init-reg)" in capsys.readouterr().err
    with env.session() as s:
        assert s.scalars(select(Student)).all() == []


def test_create_instructor_stores_an_argon2_hash(env, capsys):
    assert main(["create-instructor", "Prof@Example.org", "--password", "correct horse"]) == 0
    with env.session() as s:
        prof = s.scalar(select(Instructor))
    assert prof.email == "prof@example.org" and prof.password_hash.startswith("$argon2id$")
    assert verify_password(prof.password_hash, "correct horse") and not verify_password(prof.password_hash, "wrong")
    assert main(["create-instructor", "prof@example.org", "--password", "short"]) == 2
    assert "at least 8" in capsys.readouterr().err


def test_assignment_deadline_and_custom_rubric(env, tmp_path, capsys):
    assert main(["assignment", "init-reg", "--deadline", "2026-12-01T23:59+01:00"]) == 0
    with env.session() as s:
        assert s.get(Assignment, "init-reg").deadline.isoformat() == "2026-12-01T22:59:00+00:00"
    with pytest.raises(SystemExit):
        main(["assignment", "init-reg", "--deadline", "2026-12-01T23:59"])
    assert "no time zone" in capsys.readouterr().err
    assert main(["assignment", "lab2"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("id = 'x'\n")
    assert main(["assignment", "lab2", "--config", str(bad)]) == 2
    assert "is invalid" in capsys.readouterr().err


def test_an_invalid_setting_is_named_with_what_to_do(env, monkeypatch, capsys):
    monkeypatch.setenv("LABGRADER_GRADING_CPUS", "-1")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "LABGRADER_GRADING_CPUS" in err and "greater than or equal to 0" in err and "fix or unset it" in err


def test_help_shows_the_whole_description(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("The `labgrader` command: run the service (serve, worker, up) and administer it (migrate, "
            "create-instructor, import-roster, assignment, rename-assignment, regrade, sweep). Settings come from "
            "LABGRADER_* environment variables.") in out  # fmt: skip


def test_create_instructor_asks_for_the_password_twice(env, capsys, monkeypatch):
    typed = iter(["correct horse", "correct horse"])
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": prompts.append(prompt) or next(typed))
    assert main(["create-instructor", "prof@example.org"]) == 0
    assert prompts == ["Password: ", "Password again: "]
    with env.session() as s:
        assert verify_password(s.scalar(select(Instructor)).password_hash, "correct horse")


def test_create_instructor_refuses_two_different_passwords(env, capsys, monkeypatch):
    assert main(["create-instructor", "prof@example.org", "--password", "correct horse"]) == 0
    typed = iter(["battery staple", "battery stapel"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert main(["create-instructor", "prof@example.org"]) == 2
    assert "the two passwords differ; nothing was changed" in capsys.readouterr().err
    with env.session() as s:  # the old password still holds
        assert verify_password(s.scalar(select(Instructor)).password_hash, "correct horse")


def test_create_instructor_says_so_when_the_input_ends_before_the_second_password(env, capsys, monkeypatch):
    typed = iter(["battery staple"])  # a pipe of one line: the second prompt reads the end of the input

    def getpass(prompt=""):
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    assert main(["migrate"]) == 0
    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["create-instructor", "prof@example.org"]) == 2
    err = capsys.readouterr().err
    assert "the input ended before the password was given twice; nothing was changed" in err
    assert "Traceback" not in err
    with env.session() as s:
        assert s.scalar(select(Instructor)) is None
