"""A grading process killed outright (SIGKILL, out of memory) takes its sandboxed jobs with it: a worker that
dies mid-grading leaves no student code running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .helpers import HOSTILE, processes_with, requires_pid_namespace


@requires_pid_namespace
def test_jobs_die_with_the_process_that_started_them(tmp_path):
    folder = tmp_path / "jobs"
    folder.mkdir()
    script = textwrap.dedent(f"""
        import tempfile
        tempfile.tempdir = {str(folder)!r}
        from pathlib import Path
        from grader.sandbox import Limits, run_task
        reply = run_task(Path({str(HOSTILE / "loop_import.py")!r}), "load", params={{}}, inputs={{}},
                         limits=Limits(wall_seconds=120, cpu_seconds=120, memory_mb=2048), threads=1)
        print("the job ended before it was killed:", reply.ok, reply.failure, reply.log_tail[-2000:])
    """)
    grader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def job_processes() -> list[str]:  # the grading process names the folder too: it is not a job process
            return [p for p in processes_with(str(folder)) if not p.startswith(f"{grader.pid}:")]

        deadline = time.monotonic() + 60
        while len(job_processes()) < 2 and time.monotonic() < deadline and grader.poll() is None:
            time.sleep(0.1)
        if len(job_processes()) < 2:
            grader.kill()
            pytest.fail(f"the job never started (grader exit {grader.wait()}): {grader.stdout.read().decode()[-3000:]}")
        time.sleep(1)  # the student's loop is running now
        os.kill(grader.pid, signal.SIGKILL)
        grader.wait()
        deadline = time.monotonic() + 10
        while job_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job_processes() == []
    finally:  # a failure above leaves no grading process behind for the next test to trip over
        grader.kill()
        grader.wait()
        grader.stdout.close()
