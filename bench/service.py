"""Benchmarks of the service as users run it: the API under load while a worker grades, and grading throughput
with one and with two workers. Each run starts real `labgrader` processes (migrate, import-roster, serve, worker)
in a temporary folder of its own: SQLite there, and a Redis database and Celery queue of the benchmark's own
(LABGRADER_BENCH_REDIS, default redis://127.0.0.1:6379/13). Every process started is killed at the end, with its
whole process tree, and the queue's keys are deleted."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select

from bench.common import REFERENCE, ROOT, Row
from service.db import Database
from service.models import Status, Submission

BROKER = os.environ.get("LABGRADER_BENCH_REDIS", "redis://127.0.0.1:6379/13")
LABGRADER = [sys.executable, "-m", "service.cli"]
ASSIGNMENT = "init-reg"
MARK = "BENCH_JSON "
PACED_CLIENTS, PAUSE_MS = 16, 750  # about 20 requests/s: far above a deadline rush (300 students in 10 minutes)

# wrk's script: one prepared request per token, taken in turn; every answer counted by status code, the first
# unexpected one kept; done() prints one JSON line (latencies in ms).
WRK_SCRIPT = r"""
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- args: method, path, expected status, tokens file (one a line), pause before each request (ms, 0: none),
-- [body file, content type]
function init(args)
  local method, path, body, ctype = args[1], args[2], nil, args[7]
  expected = tonumber(args[3])
  pause = tonumber(args[5])
  if args[6] then body = slurp(args[6]) end
  reqs = {}
  for token in slurp(args[4]):gmatch("[^\n]+") do
    local headers = {["Authorization"] = "Bearer " .. token}
    if ctype then headers["Content-Type"] = ctype end
    table.insert(reqs, wrk.format(method, path, headers, body))
  end
  n = (index or 0) * 17  -- each thread starts at another student
  math.randomseed(1000 + (index or 0))
  codes = {}
  first_error = ""
end

-- Think time: exponential with mean `pause`, so that the clients' requests arrive at random (about a Poisson
-- stream, as students do), not in lockstep: with a fixed pause every connection fires in the same instant and
-- the last of them waits for all the others. Each thread its own fixed seed: runs are comparable. Cut at 4x the
-- mean (0.2% of pauses; the mean drops by 2%): a pause longer than uvicorn's keep-alive (5 s) would find its
-- connection closed, which wrk counts as an error where a browser or httpx would reconnect.
function delay()
  if pause == 0 then return 0 end
  return math.floor(math.min(-pause * math.log(1 - math.random()), 4 * pause))
end

function request()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  if status ~= expected and first_error == "" then
    first_error = status .. " " .. string.sub(body or "", 1, 500)
  end
end

local function escape(s)
  return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

function done(summary, latency, requests)
  local codes, first = {}, ""
  for _, t in ipairs(threads) do
    for code, count in pairs(t:get("codes") or {}) do codes[code] = (codes[code] or 0) + count end
    local f = t:get("first_error")
    if first == "" and f then first = f end
  end
  local parts = {}
  for code, count in pairs(codes) do table.insert(parts, string.format('"%d": %d', code, count)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_s": %.6f, "codes": {%s}, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "first_error": "%s"}\n',
    summary.requests, summary.duration / 1e6, table.concat(parts, ", "), e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, escape(first)))
end
"""


class BenchSetupError(RuntimeError):
    """Something the benchmark needs is missing or did not start; the message says what and how to fix it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_stats() -> dict[int, list[str]]:
    """Every process's /proc/PID/stat fields after the command name (state, ppid, ...)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry.name)] = (entry / "stat").read_text().rpartition(")")[2].split()
    return stats


def process_tree(pid: int, stats: dict[int, list[str]] | None = None) -> list[int]:
    """pid and all its descendants (also those in sessions of their own, like the sandbox children)."""
    stats = stats if stats is not None else _proc_stats()
    children: dict[int, list[int]] = {}
    for p, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(p)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process tree: the live processes' own, and that of the children they reaped."""
    stats = _proc_stats()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(x) for x in stats[p][11:15]) for p in process_tree(pid, stats) if p in stats) / ticks


class Process:
    """A `labgrader` child in its own session, logging to a file; stop() kills its whole tree."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        self._file = self.log.open("ab")
        self.started = time.perf_counter()
        self.popen = subprocess.Popen(args, env=env, cwd=folder, stdout=self._file, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        tree = process_tree(self.pid) if self.alive() else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for p in tree:  # what left the process group (setsid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._file.close()


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise BenchSetupError(f"timed out after {timeout:.0f} s waiting for {what}")


class Service:
    """A whole service in a temporary folder: its SQLite database, a Redis queue of its own, students with
    tokens, `labgrader serve` on a free loopback port and any number of workers (fast mode). A context manager:
    everything it started is stopped, and its queue deleted, however the benchmark ends."""

    def __init__(self, name: str, students: int) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"labgrader-bench-{name}-", ignore_cleanup_errors=True)
        self.folder = Path(self._tmp.name)
        self.queue = f"bench-{name}-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{self.folder / 'db.sqlite'}"
        self.n_students = students
        self.tokens: list[str] = []
        self.api: Process | None = None
        self.workers: list[Process] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABGRADER_")}
        self.env = env | {
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
            "LABGRADER_STORAGE_DIR": str(self.folder / "storage"),
            "LABGRADER_DATABASE_URL": self.database_url,
            "LABGRADER_BROKER_URL": BROKER,
            "LABGRADER_QUEUE": self.queue,
            "LABGRADER_RATE_LIMIT": str(10**9),  # the load must never be refused with 429
            "LABGRADER_HOST": "127.0.0.1",
            "LABGRADER_PORT": str(self.port),
            "LABGRADER_FAST": "1",  # short gradings (the workers' budgets; the API ignores it)
        }

    def __enter__(self) -> Service:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _labgrader(self, *args: str) -> str:
        done = subprocess.run([*LABGRADER, *args], env=self.env, cwd=self.folder, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise BenchSetupError(f"`labgrader {' '.join(args)}` failed ({done.returncode}):\n"
                                  f"{(done.stdout + done.stderr)[-3000:]}")  # fmt: skip
        return done.stdout

    def _setup(self) -> None:
        try:
            with redis.Redis.from_url(BROKER, socket_timeout=3) as r:
                r.ping()
        except redis.RedisError as e:
            raise BenchSetupError(
                f"Redis does not answer at {BROKER} ({e}): start redis-server, or point "
                "LABGRADER_BENCH_REDIS at a Redis database of the benchmark's own."
            ) from e
        self._labgrader("migrate")
        roster = self.folder / "roster.csv"
        with roster.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["student_id", "name", "email"])
            writer.writerows([f"b{i:03d}", f"Bench Student {i}", f"b{i:03d}@example.org"]
                             for i in range(self.n_students))  # fmt: skip
        tokens_csv = self.folder / "tokens.csv"
        self._labgrader("import-roster", str(roster), "--assignment", ASSIGNMENT, "--out", str(tokens_csv))
        with tokens_csv.open(encoding="utf-8") as f:
            self.tokens = [row["token"] for row in csv.DictReader(f)]
        if len(self.tokens) != self.n_students or not all(self.tokens):
            raise BenchSetupError(f"import-roster issued {len(self.tokens)} tokens for {self.n_students} students")

    def start_api(self) -> None:
        self.api = Process("api", [*LABGRADER, "serve"], self.env, self.folder)

        def answers() -> bool:
            if not self.api.alive():
                raise BenchSetupError(f"`labgrader serve` exited ({self.api.popen.returncode}):\n{self.api.tail()}")
            try:
                return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, 60, f"the API to answer on {self.url}/api/health (log: {self.api.log})")

    def start_worker(self, env: dict[str, str] | None = None, cpu: int | None = None) -> Process:
        """A `labgrader worker`; with `cpu`, it and every process it starts run on that CPU only (taskset)."""
        pin = [] if cpu is None else ["taskset", "--cpu-list", str(cpu)]
        name = f"worker{len(self.workers)}"
        worker = Process(name, [*pin, *LABGRADER, "worker"], self.env | (env or {}), self.folder)
        self.workers.append(worker)
        return worker

    def worker_ready(self, worker: Process) -> bool:
        if not worker.alive():
            raise BenchSetupError(f"`labgrader worker` exited ({worker.popen.returncode}):\n{worker.tail()}")
        return "ready." in worker.tail(100_000)

    def submit(self, client: httpx.Client, token: str) -> str:
        r = client.post(f"{self.url}/api/submissions", headers={"Authorization": f"Bearer {token}"},
                        files={"file": (REFERENCE.name, REFERENCE.read_bytes(), "text/x-python")},
                        data={"assignment": ASSIGNMENT})  # fmt: skip
        if r.status_code != 202:
            raise AssertionError(f"POST /api/submissions answered {r.status_code}: {r.text[:500]}")
        return r.json()["id"]

    def statuses(self) -> dict[str, int]:
        with Database(self.database_url) as db, db.session() as s:
            rows = s.execute(select(Submission.status, func.count()).group_by(Submission.status)).all()
        return {str(status): n for status, n in rows}

    def broker_counts(self) -> tuple[int, int]:
        """Messages waiting in this service's queue, and those a worker holds unacknowledged."""
        with redis.Redis.from_url(BROKER, socket_timeout=5) as r:
            held = sum(json.loads(v)[2] == self.queue for v in r.hvals("unacked"))
            return r.llen(self.queue), held

    def close(self) -> None:
        for p in [*self.workers, *([self.api] if self.api else [])]:
            p.stop()
        self.workers, self.api = [], None
        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(BROKER, socket_timeout=5) as r:
            for key in r.scan_iter(match=f"*{self.queue}*"):
                r.delete(key)
            for tag, value in r.hgetall("unacked").items():
                with contextlib.suppress(ValueError, IndexError, TypeError):
                    if json.loads(value)[2] == self.queue:
                        r.hdel("unacked", tag)
                        r.zrem("unacked_index", tag)
        self._tmp.cleanup()


def _multipart(boundary: str) -> bytes:
    return b"".join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="assignment"\r\n\r\n{ASSIGNMENT}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{REFERENCE.name}"\r\n'
        "Content-Type: text/x-python\r\n\r\n".encode(),
        REFERENCE.read_bytes(),
        f"\r\n--{boundary}--\r\n".encode(),
    ])  # fmt: skip


def run_wrk(svc: Service, method: str, path: str, expected: int, seconds: int, connections: int, threads: int,
            body: Path | None = None, content_type: str | None = None, pause_ms: int = 0) -> dict:  # fmt: skip
    """wrk against the service: each connection sends its next request as soon as the last is answered, after
    `pause_ms` (0: a saturating load; above 0, clients that think between requests)."""
    script, tokens = svc.folder / "load.lua", svc.folder / "tokens.txt"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    tokens.write_text("\n".join(svc.tokens) + "\n", encoding="utf-8")
    args = [method, path, str(expected), str(tokens), str(pause_ms), *([str(body), content_type or ""] if body else [])]
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script),
           svc.url, "--", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise BenchSetupError(f"wrk failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    stats = json.loads(lines[-1][len(MARK) :])
    stats["codes"] = {int(k): v for k, v in stats["codes"].items()}
    stats["rate"] = stats["requests"] / stats["duration_s"]
    stats["socket_errors"] = sum(v for k, v in stats["errors"].items() if k != "status")
    stats["bad"] = stats["requests"] - stats["codes"].get(expected, 0) + stats["socket_errors"]
    if stats["bad"]:
        raise AssertionError(
            f"{method} {path} under load: {stats['bad']} of {stats['requests']} requests did not answer {expected} "
            f"(status codes {stats['codes']}, socket errors {stats['errors']}); first: {stats['first_error']!r}; "
            f"API log: {svc.api.tail(2000) if svc.api else ''}"
        )
    return stats


def _require_cpus(n: int) -> list[int]:
    """The CPUs this process may use, when there are at least n for workers (or probes) on a CPU of their own."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < n:
        raise BenchSetupError(f"the scaling benchmark pins {n} workers to a CPU each, but this process may use "
                              f"{len(cpus)} CPU(s) ({cpus}): run it on a machine with {n} or more, outside a CPU "
                              "mask such as taskset's")  # fmt: skip
    if shutil.which("taskset") is None:
        raise BenchSetupError("the scaling benchmark pins workers with taskset, which is not installed: "
                              "apt-get install util-linux")  # fmt: skip
    return cpus


def _require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise BenchSetupError("the api benchmark drives the API with wrk, which is not installed: "
                              "apt-get install wrk (Debian/Ubuntu package wrk)")  # fmt: skip


def bench_api(quick: bool) -> Row:
    """The API while its one worker grades: wrk POSTs the reference solution to /api/submissions as 50 students in
    turn (every answer must be 202, and the database must hold every accepted submission), against a cheap
    authenticated read, GET /api/assignments, under the same load. Two loads each: students who pause between
    requests (PACED_CLIENTS clients, pausing PAUSE_MS on average: the row's p99), and clients that never pause
    (saturation)."""
    _require_wrk()
    seconds = 5 if quick else 20
    paced_seconds = 10 if quick else 120  # the row's p99: about 2600 requests; over 900 it moved by 30-51 ms
    threads, paced, pause, saturating = 2, PACED_CLIENTS, PAUSE_MS, 32
    with Service("api", students=50) as svc:
        svc.start_api()
        worker = svc.start_worker()
        wait_for(lambda: svc.worker_ready(worker), 120, f"the worker to be ready (log: {worker.log})")
        boundary = f"labgrader-bench-{uuid.uuid4().hex}"
        body = svc.folder / "body.bin"
        body.write_bytes(_multipart(boundary))
        ctype = f"multipart/form-data; boundary={boundary}"
        accepted = 0
        post_full = run_wrk(svc, "POST", "/api/submissions", 202, seconds, saturating, threads, body, ctype)
        accepted += post_full["codes"][202]
        post = run_wrk(svc, "POST", "/api/submissions", 202, paced_seconds, paced, threads, body, ctype,
                       pause_ms=pause)  # fmt: skip
        accepted += post["codes"][202]
        counts: list[int] = []

        def settled() -> bool:  # requests that were in flight when wrk stopped may still be committing
            counts.append(sum(svc.statuses().values()))
            return len(counts) >= 3 and counts[-1] == counts[-3]

        wait_for(settled, 60, "the submission count to settle", interval=0.5)
        stored = counts[-1]
        if not accepted <= stored <= accepted + saturating + paced:
            raise AssertionError(f"wrk saw {accepted} submissions accepted (202) but the database holds {stored}: "
                                 f"{'lost' if stored < accepted else 'more than the requests in flight'}")  # fmt: skip
        get = run_wrk(svc, "GET", "/api/assignments", 200, paced_seconds, paced, threads, pause_ms=pause)
        get_full = run_wrk(svc, "GET", "/api/assignments", 200, seconds, saturating, threads)
        statuses = svc.statuses()
        waiting, held = svc.broker_counts()
        if statuses.get("queued", 0) == stored:
            raise AssertionError(f"the worker claimed none of the {stored} submissions during the loads: it was not "
                                 f"busy (log: {worker.tail()})")  # fmt: skip
    what = (
        f"POST /api/submissions, {paced} students each pausing {pause} ms on average, 1 worker busy: "
        f"{post['rate']:.0f} submissions/s, p50 {post['p50_ms']:.0f} ms, p99 {post['p99_ms']:.0f} ms; baseline "
        f"GET /api/assignments under the same load: p99 {get['p99_ms']:.0f} ms"
    )

    def line(label: str, s: dict) -> str:
        return (f"| {label} | {s['requests']} | {s['rate']:.0f} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | "
                f"{s['p99_ms']:.1f} | {s['max_ms']:.0f} | {s['bad']} |")  # fmt: skip

    details = [
        f"wrk -t{threads} on loopback against `labgrader serve` (1 API process, SQLite, a Redis queue of its own) "
        f"while one `labgrader worker` (LABGRADER_FAST=1, nice 10) grades the queue the load fills; wrk, the API and "
        f"the worker share this machine's {os.cpu_count()} CPUs; every process starts a session of its own, as "
        f"under a service manager. Paced ({paced_seconds} s): {paced} connections, each pausing a random time "
        f"(exponential, mean {pause} ms) after every answer: students who think between requests, arriving at "
        f"random. Saturating ({seconds} s): {saturating} "
        "connections that never pause; there the latency is the queue in front of the one API process (Little's "
        "law: connections / throughput), not the time a request needs.",
        "",
        "| load | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        line("GET /api/assignments, paced (baseline)", get),
        line("POST /api/submissions, paced (ours)", post),
        line(f"GET /api/assignments, {saturating} saturating", get_full),
        line(f"POST /api/submissions, {saturating} saturating", post_full),
        "",
        f"- Every POST answered 202: {accepted} accepted; the database holds {stored} ({stored - accepted} more "
        "were in flight when wrk stopped): none lost.",
        f"- At the end the queue held {waiting} messages (+{held} unacknowledged, the grading under way) for "
        f"{statuses.get('queued', 0)} queued and {statuses.get('running', 0)} running submissions; the worker had "
        f"finished {statuses.get('done', 0)} ({statuses.get('failed', 0)} failed).",
    ]
    return Row("api", get["p99_ms"], post["p99_ms"], what, unit="ms p99", details=details)


def _grade_with_workers(n_workers: int, n: int, own_cpu: bool = False) -> dict:
    """N submissions queued before any worker runs; then n_workers start at once: the time until all are done.
    Shared: the workers share the machine's CPUs, each given its share (as docs/deploy.md says). own_cpu: worker i
    runs on CPU i alone with a share of 1, as on a machine of its own (the API and Redis still use any CPU)."""
    cpus = _require_cpus(n_workers) if own_cpu else sorted(os.sched_getaffinity(0))
    with Service(f"workers{n_workers}", students=n) as svc, httpx.Client(timeout=60) as client:
        svc.start_api()
        ids = [svc.submit(client, token) for token in svc.tokens]
        t0 = time.perf_counter()
        share = {"LABGRADER_GRADING_CPUS": "1" if own_cpu else str(max(1, len(cpus) // n_workers))}
        workers = [svc.start_worker(share, cpus[i] if own_cpu else None) for i in range(n_workers)]
        ready: dict[str, float] = {}
        final: dict[str, dict] = {}
        seen_cpus: dict[str, set[int]] = {w.name: set() for w in workers}  # own_cpu: by each worker's processes

        def all_finished() -> bool:
            for w in workers:
                if w.name not in ready and svc.worker_ready(w):
                    ready[w.name] = time.perf_counter() - t0
            if own_cpu:
                stats = _proc_stats()
                for w in workers:
                    for pid in process_tree(w.pid, stats):
                        with contextlib.suppress(OSError):
                            seen_cpus[w.name] |= os.sched_getaffinity(pid)
            for sid, token in zip(ids, svc.tokens, strict=True):
                if sid not in final:
                    r = client.get(f"{svc.url}/api/submissions/{sid}", headers={"Authorization": f"Bearer {token}"})
                    r.raise_for_status()
                    if r.json()["status"] in (Status.done, Status.failed):
                        final[sid] = r.json()
            return len(final) == len(ids)

        wait_for(all_finished, 120 + 240 * n / n_workers, f"{n} gradings with {n_workers} worker(s)", interval=0.5)
        elapsed = time.perf_counter() - t0
        cpu = [tree_cpu_seconds(w.pid) for w in workers]
        failed = {sid: s.get("error") for sid, s in final.items() if s["status"] != Status.done}
        if failed:
            raise AssertionError(f"{len(failed)} of {n} gradings failed: {failed}")
        if own_cpu and any(seen_cpus[w.name] != {cpus[i]} for i, w in enumerate(workers)):
            raise AssertionError(f"a worker's processes left the CPU it was given: {seen_cpus}")
        with Database(svc.database_url) as db, db.session() as s:
            spans = s.execute(select(Submission.started_at, Submission.finished_at)).all()
    grading = sorted((f - s).total_seconds() for s, f in spans)
    return {
        "seconds": elapsed,
        "ready": max(ready.values(), default=float("nan")),
        "span": (max(f for _, f in spans) - min(s for s, _ in spans)).total_seconds(),
        "grading_mean": sum(grading) / len(grading),
        "cpu": cpu,
        "cpus_seen": {name: sorted(c) for name, c in seen_cpus.items()},
        "score": sum(s["score"] for s in final.values()) / n,
        "max_score": next(iter(final.values()))["max_score"],
    }


def _workers_table(one: dict, two: dict, n: int, labels: tuple[str, str]) -> list[str]:
    """The two runs side by side, and whether every grading got the reference's score."""

    def line(label: str, r: dict) -> str:
        cpu = " + ".join(f"{c:.0f}" for c in r["cpu"])
        return (f"| {label} | {r['seconds']:.1f} | {n / r['seconds'] * 60:.2f} | {r['ready']:.1f} | {r['span']:.1f} "
                f"| {r['grading_mean']:.1f} | {cpu} | {sum(r['cpu']) / r['seconds']:.2f} |")  # fmt: skip

    return [
        "| workers | wall s | gradings/min | workers ready after s | span s | mean grading s | CPU s per worker "
        "| CPUs busy |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
        line(labels[0], one),
        line(labels[1], two),
        "",
        f"Every grading done, mean score {one['score']:.1f} / {one['max_score']:.0f} (1 worker) and "
        f"{two['score']:.1f} / {two['max_score']:.0f} (2 workers) in fast mode.",
    ]


def bench_workers(quick: bool) -> Row:
    """Grading throughput: N submissions of the reference solution (fast mode) from N students, all queued before
    the workers start; 1 worker (baseline) against 2 workers on the same queue, each on a fresh service. Timed from
    starting the workers until every submission is done (polled over the API)."""
    n = 2 if quick else 6
    one, two = _grade_with_workers(1, n), _grade_with_workers(2, n)
    ratio = one["seconds"] / two["seconds"]
    cpus, cpu_one, cpu_two = len(os.sched_getaffinity(0)), sum(one["cpu"]) / n, sum(two["cpu"]) / n
    ceiling = cpus / cpu_two * one["seconds"] / n
    what = (
        f"{n} fast-mode gradings: 1 worker {one['seconds']:.1f} s ({n / one['seconds'] * 60:.1f}/min), 2 workers "
        f"{two['seconds']:.1f} s ({n / two['seconds'] * 60:.1f}/min); {ratio:.2f}x"
    )

    details = [
        f"{n} submissions of examples/reference_solution.py from {n} students, queued over the API before the "
        "workers start (LABGRADER_FAST=1, concurrency 1, nice 10, LABGRADER_GRADING_CPUS = CPUs / workers; SQLite "
        "and a Redis queue of its own). Wall: from "
        "starting the workers until the API says every submission is done; span: first grading started to last "
        "finished (the database's times); CPU: user + system time of each worker's process tree (pool process and "
        "sandbox children included, startup too), from /proc.",
        "",
        *_workers_table(one, two, n, ("1 (baseline)", "2 (ours)")),
        "",
        f"This machine has {cpus} CPUs and one worker alone keeps {sum(one['cpu']) / one['seconds']:.2f} of them busy "
        f"(two sandbox tasks at once). CPU per grading: {cpu_one:.1f} s with 1 worker, {cpu_two:.1f} s with 2 (one "
        f"task and one thread each), so 2 workers on {cpus} CPUs could finish at most {cpus} / {cpu_two:.1f} gradings "
        f"a second, {ceiling:.2f}x what one worker did, however they are scheduled. The ratio shows that, not how the "
        "service scales across machines, where each worker brings its own CPUs (`scaling`).",
    ]
    return Row("workers", one["seconds"], two["seconds"], what, details=details)


# A CPU-bound probe: single-thread SGD steps of an MNIST-sized MLP (the kernels of the grading's longest tasks).
CPU_PROBE = """
import time, torch
torch.set_num_threads(1)
torch.manual_seed(0)
x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
m = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                        torch.nn.Linear(512, 10))
opt = torch.optim.SGD(m.parameters(), lr=0.01)
t = time.perf_counter()
for _ in range(STEPS):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(m(x), y).backward()
    opt.step()
print(time.perf_counter() - t)
"""


def _probe_on(cpus: list[int], steps: int) -> list[float]:
    """Run the probe once on each of `cpus` at the same time; each copy's seconds."""
    code = CPU_PROBE.replace("STEPS", str(steps))
    procs = [subprocess.Popen(["taskset", "--cpu-list", str(c), sys.executable, "-c", code], stdout=subprocess.PIPE,
                              text=True) for c in cpus]  # fmt: skip
    outs = [proc.communicate(timeout=600)[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise BenchSetupError(f"the CPU probe failed: {[proc.returncode for proc in procs]}")
    return [float(out) for out in outs]


def cpu_pair_rounds(rounds: int, steps: int) -> list[tuple[float, float, float]]:
    """Rounds of the probe: one copy alone on the first CPU, then one copy on each of the first two at once; the
    seconds of the lone copy and of the two copies of each round."""
    cpus = _require_cpus(2)[:2]
    out = []
    for _ in range(rounds):
        (t,) = _probe_on(cpus[:1], steps)
        t0, t1 = _probe_on(cpus, steps)
        out.append((t, t0, t1))
    return out


def cpu_pair_ceiling(rounds: list[tuple[float, float, float]]) -> dict:
    """What two CPUs of this machine deliver against one: each round's ratio is the pair's work per second
    (1/t0 + 1/t1) against the lone copy's (1/t), measured seconds apart; the median over rounds resists the
    machine's drift between minutes."""
    ratios = [t * (1 / t0 + 1 / t1) for t, t0, t1 in rounds]
    return {"alone": statistics.median(t for t, _, _ in rounds),
            "pair": statistics.median(x for _, t0, t1 in rounds for x in (t0, t1)),
            "ceiling": statistics.median(ratios), "low": min(ratios), "high": max(ratios),
            "rounds": len(rounds)}  # fmt: skip


def bench_scaling(quick: bool) -> Row:
    """Throughput as workers are added with CPUs of their own (how the service scales across machines): 1 worker
    on one CPU (baseline) against 2 workers, each on a CPU of its own, on the same queue; otherwise as `workers`."""
    n = 2 if quick else 6
    rounds, steps = (1, 60) if quick else (3, 400)
    probe = cpu_pair_rounds(rounds, steps)  # before, between and after the gradings: the machine drifts
    one = _grade_with_workers(1, n, own_cpu=True)
    probe += cpu_pair_rounds(rounds, steps)
    two = _grade_with_workers(2, n, own_cpu=True)
    machine = cpu_pair_ceiling(probe + cpu_pair_rounds(rounds, steps))
    ratio = one["seconds"] / two["seconds"]
    what = (
        f"{n} fast-mode gradings, one CPU per worker: 1 worker {one['seconds']:.1f} s "
        f"({n / one['seconds'] * 60:.1f}/min), 2 workers {two['seconds']:.1f} s ({n / two['seconds'] * 60:.1f}/min); "
        f"{ratio:.2f}x; the 2 CPUs' own ceiling {machine['ceiling']:.2f}x"
    )
    cpu_one, cpu_two = sum(one["cpu"]) / n, sum(two["cpu"]) / n
    details = [
        "As `workers`, but each worker runs on a CPU of its own (`taskset`, inherited by its sandbox children) with "
        "LABGRADER_GRADING_CPUS=1: one sandbox task at a time and one torch thread, as on a 1-CPU machine per "
        "worker. The API, Redis and this script are not pinned and use whatever CPU is free. CPUs allowed to each "
        "worker's processes, sandbox children included (read every 0.5 s; the run fails if a worker leaves its CPU): "
        f"{'; '.join(f'{w} {c}' for w, c in two['cpus_seen'].items())}.",
        "",
        *_workers_table(one, two, n, ("1 on one CPU (baseline)", "2 on a CPU each (ours)")),
        "",
        f"CPU per grading: {cpu_one:.1f} s with 1 worker, {cpu_two:.1f} s with 2 ({cpu_two / cpu_one:.2f}x: what two "
        "workers cost each other beyond their CPUs, in memory bandwidth, caches and the shared API and Redis).",
        "",
        f"The machine's own ceiling, measured in the same run: a CPU-bound probe (single-thread SGD steps of an "
        f"MNIST-sized MLP) took {machine['alone']:.2f} s alone on one CPU and {machine['pair']:.2f} s with a copy on "
        f"the other CPU at the same time (medians of {machine['rounds']} rounds, a third each before, between and "
        f"after the gradings), so two CPUs here delivered {machine['ceiling']:.2f}x one (rounds from "
        f"{machine['low']:.2f}x to {machine['high']:.2f}x; below 2x, the two CPUs share the host's cores, caches and "
        f"memory with other tenants). Two workers reached {ratio / machine['ceiling']:.0%} of that. What else "
        f"separates them from 2x: the workers' start ({one['ready']:.1f} and {two['ready']:.1f} s, in each wall once), "
        "the API, Redis and this script's polling on the same CPUs, and the machine's drift between the two runs.",
    ]
    return Row("scaling", one["seconds"], two["seconds"], what, details=details)
