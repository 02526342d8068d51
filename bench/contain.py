"""The `contain` benchmark: what a fork bomb and a memory bomb cost everyone else while one worker grades them.

One run, two phases on the same service (`labgrader serve` and one `labgrader worker` with
LABGRADER_GRADING_CPUS=1, so a grading's CPU share is one of this machine's CPUs):

- baseline: the worker idle; /api/health polled every 20 ms, and `grader grade` of the reference solution (fast
  mode) on the same machine, timed;
- ours: the same, while the worker grades tests/submissions/hostile/cpu_fork_bomb.py (every model factory forks
  300 children that each burn CPU) and memory_bomb_processes.py (8 children holding 1 GB each, per factory).

The bombs' own cost is read from the kernel's accounting of their jobs' cgroups (each run's CPU time and peak
memory in their result.json): the benchmark fails when a job used more CPU time than its budget, or a grading more
CPU than its share over its wall time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.common import REFERENCE, ROOT, Row
from bench.service import ASSIGNMENT, Service, wait_for

BOMBS = ("cpu_fork_bomb", "memory_bomb_processes")
HOSTILE = ROOT / "tests" / "submissions" / "hostile"
GRADER = [sys.executable, "-m", "reports.cli"]
POLL_S = 0.02
#: CPU time a check of the budget can let through (one quarter-second tick at the share) and the stack dump.
SLACK_CPU_S = 3.0


def _poll_health(url: str, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            client.get(f"{url}/api/health").raise_for_status()
            latencies.append(1000 * (time.perf_counter() - t0))
            stop.wait(POLL_S)


def _grade_reference(folder: Path) -> float:
    """Seconds that `grader grade` of the reference solution (fast mode) takes, as a student's grading would."""
    t0 = time.perf_counter()
    subprocess.run([*GRADER, "grade", str(REFERENCE), "--out", str(folder), "--fast", "--quiet"], check=True,
                   capture_output=True, cwd=ROOT)  # fmt: skip
    return time.perf_counter() - t0


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def _submit(svc: Service, client: httpx.Client, token: str, path: Path) -> str:
    r = client.post(f"{svc.url}/api/submissions", headers={"Authorization": f"Bearer {token}"},
                    files={"file": (path.name, path.read_bytes(), "text/x-python")},
                    data={"assignment": ASSIGNMENT})  # fmt: skip
    r.raise_for_status()
    return r.json()["id"]


def _phase(svc: Service, bombs: list[tuple[str, str]], folder: Path) -> tuple[list[float], float]:
    """Health latencies and the reference grading's time, while the worker grades `bombs` (may be none)."""
    stop, latencies = threading.Event(), []
    poller = threading.Thread(target=_poll_health, args=(svc.url, stop, latencies), daemon=True)
    poller.start()
    try:
        reference_s = _grade_reference(folder)
        with httpx.Client(timeout=10) as client:

            def finished() -> bool:
                states = [client.get(f"{svc.url}/api/submissions/{i}", headers={"Authorization": f"Bearer {t}"})
                          .json()["status"] for t, i in bombs]  # fmt: skip
                return all(s in ("done", "failed") for s in states)

            wait_for(finished, 600, "the bombs' gradings to finish", interval=1.0)
    finally:
        stop.set()
        poller.join()
    return latencies, reference_s


def _bomb_costs(svc: Service, bombs: list[tuple[str, str]]) -> list[str]:
    """Each bomb grading's CPU as its cgroups counted it, checked against its budgets and its share."""
    sys.path.insert(0, str(ROOT))
    from grader import load_assignment

    limits = load_assignment().limits
    lines = []
    with httpx.Client(timeout=30) as client:
        for (token, sid), name in zip(bombs, BOMBS, strict=True):
            r = client.get(f"{svc.url}/api/submissions/{sid}/result.json", headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            result = r.json()
            runs = result["runs"]
            if any(run["cpu_seconds"] is None for run in runs):
                raise AssertionError(f"{name}: no cgroup counted its jobs' CPU time; the benchmark needs job cgroups")
            for run in runs:
                if run["cpu_seconds"] > limits.cpu_budget(run["name"]) + SLACK_CPU_S:
                    raise AssertionError(f"{name}: job {run['name']} used {run['cpu_seconds']:.1f} CPU-s")
            cpu = sum(run["cpu_seconds"] for run in runs)
            share = cpu / result["seconds"]
            if share > 1.0 + SLACK_CPU_S / result["seconds"]:
                raise AssertionError(f"{name}: {cpu:.1f} CPU-s in {result['seconds']:.1f} s is above its one-CPU share")
            kinds = sorted({c["failure"]["kind"] for c in result["checks"] if c.get("failure")})
            peak = max((run["memory_peak_mb"] or 0) for run in runs)
            lines.append(
                f"| {name} | {result['seconds']:.0f} | {cpu:.1f} | {share:.2f} | {peak:.0f} | {', '.join(kinds)} |"
            )
    return lines


def bench_contain(quick: bool) -> Row:
    with Service("contain", students=3) as svc:
        svc.env["LABGRADER_GRADING_CPUS"] = "1"
        svc.start_api()
        worker = svc.start_worker()
        wait_for(lambda: svc.worker_ready(worker), 120, f"the worker to be ready (log: {worker.log})")
        base_latencies, base_reference = _phase(svc, [], svc.folder / "ref-alone")
        with httpx.Client(timeout=10) as client:
            bombs = [(svc.tokens[i], _submit(svc, client, svc.tokens[i], HOSTILE / f"{name}.py"))
                     for i, name in enumerate(BOMBS)]  # fmt: skip
        latencies, reference = _phase(svc, bombs, svc.folder / "ref-bombs")
        costs = _bomb_costs(svc, bombs)
    base_p99, p99 = _p99(base_latencies), _p99(latencies)
    what = (
        f"GET /api/health p99 while one worker grades a CPU fork bomb and a memory bomb: {p99:.0f} ms against "
        f"{base_p99:.0f} ms idle; a reference grading beside them {reference:.1f} s against {base_reference:.1f} s"
    )
    details = [
        f"/api/health polled every {1000 * POLL_S:.0f} ms: {len(base_latencies)} requests idle (p50 "
        f"{statistics.median(base_latencies):.1f} ms, p99 {base_p99:.1f} ms), {len(latencies)} while the bombs were "
        f"graded (p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.0f} ms). "
        f"`grader grade` of the reference solution (fast) on the same machine: {base_reference:.1f} s alone, "
        f"{reference:.1f} s beside the bombs. The worker's gradings get one CPU (LABGRADER_GRADING_CPUS=1, a cgroup "
        "quota); the machine has 2.",
        "",
        "| bomb | grading s | CPU-s (cgroups) | CPUs used | peak MB of a job | failures |",
        "|---|---:|---:|---:|---:|---|",
        *costs,
    ]
    return Row("contain", base_p99, p99, what, unit="ms p99", details=details)
