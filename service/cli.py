"""The `labgrader` command: run the service (serve, worker, up) and administer it (migrate, create-instructor,
import-roster, assignment, rename-assignment, regrade, sweep). Settings come from LABGRADER_* environment variables."""

from __future__ import annotations

import argparse
import ctypes
import getpass
import logging
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select

from service.db import Database
from service.ids import RULE as ID_RULE
from service.ids import InvalidAssignmentId, check_assignment_id, is_assignment_id, shown
from service.migrate import MigrationRefused, upgrade
from service.models import Assignment, Instructor
from service.queue import broker_answers
from service.settings import Settings

DESCRIPTION = " ".join(__doc__.split("\n\n")[0].split())  # the docstring's first paragraph, whole


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def database(settings: Settings) -> Database:
    """The database, migrated first: every command works on a fresh installation."""
    upgrade(settings.sqlalchemy_url)
    return Database(settings.sqlalchemy_url)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    upgrade(settings.sqlalchemy_url)
    print(f"Database {Database.describe(settings.sqlalchemy_url)} is up to date.")
    return 0


def uvicorn_options(settings: Settings) -> dict:
    """How every API process runs: the protocol that caps request headers in size, number and time
    (service/api/http.py), a bound on connections, and the proxies trusted to name the client."""
    from service.api.http import PROTOCOL

    return {"http": PROTOCOL, "limit_concurrency": settings.max_connections, "timeout_keep_alive": 5,
            "forwarded_allow_ips": settings.forwarded_allow_ips, "proxy_headers": True}  # fmt: skip


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    upgrade(settings.sqlalchemy_url)
    # each API process builds its app (and reads its settings) from the environment
    uvicorn.run("service.api.app:create_app", factory=True, host=args.host or settings.host,
                port=args.port or settings.port, workers=settings.api_workers, log_level="info",
                **uvicorn_options(settings))  # fmt: skip
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from service.worker import run_worker

    updates = {k: v for k, v in (("device", args.device), ("worker_concurrency", args.concurrency)) if v is not None}
    run_worker(settings.model_copy(update=updates), queue=args.queue, loglevel=args.loglevel)
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """Everything on one machine: migrate, one worker in a child process, the API in this one."""
    if not broker_answers(settings.broker_url):
        return fail(f"Redis does not answer at {settings.broker_url}: start it (redis-server) or set "
                    "LABGRADER_BROKER_URL.")  # fmt: skip
    upgrade(settings.sqlalchemy_url)
    worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], preexec_fn=_stop_with_parent)
    try:
        return cmd_serve(settings, args)
    finally:  # a normal exit; on SIGTERM uvicorn re-raises the signal and the worker's death signal stops it
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def _stop_with_parent() -> None:
    """In the worker child of `labgrader up`: get SIGTERM (a warm shutdown) when `up` ends, however it ends."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def cmd_create_instructor(settings: Settings, args: argparse.Namespace) -> int:
    from service.login import forget_account
    from service.security import hash_password

    password = args.password
    if password is None:  # typed twice, unseen: a typo would lock the instructor out
        try:
            password = getpass.getpass("Password: ")
            if len(password) < 8:
                return fail("the password must have at least 8 characters.")
            again = getpass.getpass("Password again: ")
        except EOFError:  # stdin ended (a pipe with one line, or none): say so instead of a traceback
            return fail("the input ended before the password was given twice; nothing was changed. Type it twice at "
                        "the prompts (a pipe must give it on two lines), or pass --password.")  # fmt: skip
        if again != password:
            return fail("the two passwords differ; nothing was changed. Run the command again and type the same "
                        "password twice (or pass --password).")  # fmt: skip
    if len(password) < 8:
        return fail("the password must have at least 8 characters.")
    with database(settings) as db, db.session() as s:
        instructor = s.scalar(select(Instructor).where(Instructor.email == args.email.lower()))
        if instructor is None:
            s.add(Instructor(email=args.email.lower(), password_hash=hash_password(password)))
            print(f"Instructor {args.email} created.")
        else:
            instructor.password_hash = hash_password(password)
            instructor.session_version += 1  # every dashboard session of the old password ends
            print(f"Instructor {args.email} exists: password changed, and their dashboard sessions ended.")
        forget_account(s, settings, args.email)  # a throttled account may log in again at once
    return 0


def cmd_import_roster(settings: Settings, args: argparse.Namespace) -> int:
    from service.roster import RosterError, import_roster, parse_roster, tokens_csv
    from service.storage import write_atomic

    try:
        rows = parse_roster(args.csv.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as e:
        return fail(f"cannot read {args.csv}: {e}")
    except RosterError as e:
        return fail(f"{args.csv}: {e}")
    out = args.out or args.csv.with_name(f"{args.csv.stem}-tokens.csv")
    try:
        with database(settings) as db, db.session() as s:
            issued = import_roster(s, rows, args.assignment, reissue=args.reissue)
            write_atomic(out, tokens_csv(issued).encode("utf-8"))  # before the commit: no token is ever lost
    except RosterError as e:
        return fail(str(e))
    counts = {state: sum(i.status == state for i in issued) for state in ("new", "kept", "reissued")}
    print(f"{len(issued)} students on {args.assignment}: {counts['new']} new, {counts['reissued']} reissued, "
          f"{counts['kept']} kept their token. Tokens written to {out}: hand each student their own.")  # fmt: skip
    return 0


def cmd_assignment(settings: Settings, args: argparse.Namespace) -> int:
    config = None
    if args.config:
        from grader.assignment import AssignmentError, load_assignment

        try:
            spec = load_assignment(args.config)
        except AssignmentError as e:
            return fail(str(e))
        if not is_assignment_id(spec.id):
            return fail(f"{args.config}: its id {shown(spec.id)} is not a valid assignment id: use {ID_RULE}; "
                        "change the id = line of the file.")  # fmt: skip
        config = str(args.config.resolve())
    with database(settings) as db, db.session() as s:
        a = s.get(Assignment, args.id)
        if a is None:
            if config is None:
                return fail(f"there is no assignment {args.id!r}; create one with --config FILE.toml.")
            a = Assignment(id=args.id, title=args.title or spec.title, config_path=config)
            s.add(a)
        elif config is not None:
            a.config_path = config
        if args.title:
            a.title = args.title
        if args.deadline is not None:
            a.deadline = args.deadline if args.deadline != "none" else None
        deadline = a.deadline.isoformat() if a.deadline else "none"
        print(f"{a.id}: {a.title!r}, deadline {deadline}, rubric {a.config_path or 'built-in init-reg'}")
    return 0


def cmd_rename_assignment(settings: Settings, args: argparse.Namespace) -> int:
    """Give an assignment a new id, its roster and submissions with it. Works on the database as it is, without
    migrating first: it is how an id from before revision 0005 that is not a slug gets one, so that migrate,
    serve and up accept the database again."""
    import sqlalchemy as sa

    with Database(settings.sqlalchemy_url) as db, db.engine.begin() as c:
        tables = sa.MetaData()
        tables.reflect(c, only=[t for t in ("assignments", "enrollments", "submissions") if sa.inspect(c).has_table(t)])
        if "assignments" not in tables.tables:
            return fail(f"the database {Database.describe(settings.sqlalchemy_url)} has no assignments yet; "
                        "run labgrader migrate first.")  # fmt: skip
        assignments = tables.tables["assignments"]
        row = c.execute(sa.select(assignments).where(assignments.c.id == args.old)).mappings().first()
        if row is None:
            known = ", ".join(shown(i) for i in c.scalars(sa.select(assignments.c.id)))
            return fail(f"there is no assignment {shown(args.old)} (there are: {known or 'none'}).")
        if c.scalar(sa.select(assignments.c.id).where(assignments.c.id == args.new)) is not None:
            return fail(f"an assignment {args.new!r} exists already; choose another new id.")
        c.execute(sa.insert(assignments).values({**row, "id": args.new}))
        moved = {}
        for name in ("enrollments", "submissions"):
            table = tables.tables[name]
            moved[name] = c.execute(sa.update(table).where(table.c.assignment_id == args.old)
                                    .values(assignment_id=args.new)).rowcount  # fmt: skip
        c.execute(sa.delete(assignments).where(assignments.c.id == args.old))
    print(f"Assignment {shown(args.old)} is now {args.new!r}, with its {moved['enrollments']} students and "
          f"{moved['submissions']} submissions: students submit to {args.new!r} from now on.")  # fmt: skip
    return 0


def assignment_id_arg(value: str) -> str:
    try:
        return check_assignment_id(value)
    except InvalidAssignmentId as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def deadline_arg(value: str) -> datetime | str:
    if value == "none":
        return value
    try:
        when = datetime.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date and time, e.g. 2026-12-01T23:59+01:00") from e
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone; add one, e.g. {value}+01:00 or {value}Z")
    return when


def cmd_regrade(settings: Settings, args: argparse.Namespace) -> int:
    from service.maintenance import assignment_submissions, regrade_and_send
    from service.queue import make_celery

    with database(settings) as db, make_celery(settings) as app:
        ids = list(args.submission) or assignment_submissions(db, args.assignment)
        n = regrade_and_send(db, app, settings, ids)
    missing = len(ids) - n
    print(f"{n} submissions queued for regrading." + (f" {missing} ids were not found." if missing else ""))
    return 0 if not missing else 1


def cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    from service.maintenance import sweep_once
    from service.queue import make_celery

    with database(settings) as db, make_celery(settings) as app:
        report = sweep_once(db, app, settings)
    print(f"{len(report.lost)} lost by a worker and {len(report.resent)} missing from the broker: queued again.")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labgrader", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database (adds the init-reg assignment when new)")
    for name, help_ in (("serve", "run the API (migrates first)"), ("up", "migrate, then run one worker and the API")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--host", default=None, help="address to listen on (default: LABGRADER_HOST)")
        s.add_argument("--port", type=int, default=None, help="port (default: LABGRADER_PORT)")
    w = sub.add_parser("worker", help="run a Celery worker that grades submissions")
    w.add_argument("--queue", default=None, help="queue to listen on (default: LABGRADER_QUEUE)")
    w.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: LABGRADER_DEVICE")
    w.add_argument("--concurrency", type=int, default=None, help="gradings at once (1 per GPU)")
    w.add_argument("--loglevel", default="INFO")
    c = sub.add_parser("create-instructor", help="create an instructor (or set their password)")
    c.add_argument("email")
    c.add_argument("--password", default=None, help="at least 8 characters (asked for twice when omitted)")
    r = sub.add_parser("import-roster", help="add students from a CSV (student_id,name[,email]) and issue tokens")
    r.add_argument("csv", type=Path)
    r.add_argument("--assignment", required=True, type=assignment_id_arg,
                   help="enroll the students in this assignment (e.g. init-reg)")  # fmt: skip
    r.add_argument("--out", type=Path, default=None, help="where to write the tokens (default: CSV-tokens.csv)")
    r.add_argument("--reissue", action="store_true", help="new tokens for students who have one (old ones stop)")
    a = sub.add_parser("assignment", help="create an assignment or change its title, deadline or rubric")
    a.add_argument("id", type=assignment_id_arg, help="a slug: lowercase letters, digits and hyphens (init-reg-2027)")
    a.add_argument("--config", type=Path, default=None, help="assignment TOML (see grader/assignments/)")
    a.add_argument("--title", default=None)
    a.add_argument("--deadline", type=deadline_arg, default=None, help="ISO time with zone, or 'none'")
    g = sub.add_parser("regrade", help="grade submissions again (a new generation of each)")
    target = g.add_mutually_exclusive_group(required=True)
    target.add_argument("--submission", nargs="+", default=[], help="submission ids")
    target.add_argument("--assignment", type=assignment_id_arg, help="every submission of this assignment")
    sub.add_parser("sweep", help="queue again submissions that a lost worker or a lost broker left behind")
    n = sub.add_parser("rename-assignment", help="give an assignment a new id (one that migrate refuses, say)")
    n.add_argument("old", help="the id it has")
    n.add_argument("new", type=assignment_id_arg, help="the new id, a slug (e.g. lab-2)")
    return p


COMMANDS = {
    "migrate": cmd_migrate, "serve": cmd_serve, "worker": cmd_worker, "up": cmd_up,
    "create-instructor": cmd_create_instructor, "import-roster": cmd_import_roster, "assignment": cmd_assignment,
    "regrade": cmd_regrade, "sweep": cmd_sweep, "rename-assignment": cmd_rename_assignment,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as e:
        bad = "; ".join(f"LABGRADER_{str(err['loc'][0]).upper()}: {err['msg']}" for err in e.errors())
        return fail(f"a setting from the environment is invalid ({bad}); fix or unset it (the README lists them all)")
    try:
        return COMMANDS[args.command](settings, args)
    except MigrationRefused as e:
        return fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
