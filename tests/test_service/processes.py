"""Real service processes for the reliability tests: the API (`labgrader serve`), Celery workers
(`labgrader worker`) and, where a test restarts it, a Redis server of the test's own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.settings import Settings

from .kit import free_port

LABGRADER = [sys.executable, "-m", "service.cli"]


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    """A child process in its own session (so that a kill reaches its whole tree), logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("ab")
        self.popen = subprocess.Popen(args, env=env, stdout=self._file, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL, group: bool = True) -> None:
        """Signal the whole process group (worker pool and sandbox children included), or only the leader, and
        reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig) if group else self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()
        self._file.close()


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABGRADER_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"LABGRADER_{name.upper()}"] = str(value)
    return env | extra


class Service:
    """The API and any number of workers on one settings object; everything is killed at the end."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings.model_copy(update={"port": free_port()})
        self.folder = folder
        self.api: Process | None = None
        self.workers: list[Process] = []
        self.url = f"http://127.0.0.1:{self.settings.port}"

    def start_api(self) -> Process:
        self.api = Process([*LABGRADER, "serve"], environment(self.settings), self.folder / "api.log")
        wait_for(self._api_answers, 60, f"the API on {self.url} ({self.api.log})")
        return self.api

    def _api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def start_worker(self, concurrency: int = 1) -> Process:
        n = len(self.workers)
        worker = Process([*LABGRADER, "worker", f"--concurrency={concurrency}"], environment(self.settings),
                         self.folder / f"worker{n}.log")  # fmt: skip
        wait_for(lambda: "ready." in worker.output() or not worker.alive(), 90, f"worker {n} ({worker.log})")
        assert worker.alive(), worker.output()[-3000:]
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for p in [*self.workers, *([self.api] if self.api else [])]:
            if p.alive():
                p.kill(signal.SIGKILL)


class RedisServer:
    """A Redis of the test's own that keeps nothing on disk: a restart loses every message."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: Process | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = Process(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            dict(os.environ), self.folder / "redis.log",
        )  # fmt: skip
        wait_for(lambda: "Ready to accept connections" in self.process.output(), 20, "redis-server")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill(signal.SIGKILL)
