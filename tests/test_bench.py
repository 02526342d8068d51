"""The benchmark script runs and writes its table (a smoke run with --quick; timings are never asserted)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MAX_POINTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a benchmark run (30-90 s)
def test_bench_quick_writes_the_table_goals_and_plot(tmp_path):
    out = tmp_path / "benchmarks.md"
    old = {"name": "workers", "baseline": 200.0, "ours": 150.0, "what": "kept from an earlier run", "unit": "s",
           "details": ["an earlier breakdown"], "measured": "2026-01-02"}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps({"rows": [old], "grade_timeline": []}))
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "sweep", "report", "--quick", "--merge",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "same regime for every run" in done.stdout
    table = out.read_text()
    assert "QUICK SMOKE RUN, NOT THE RECORD" in table
    assert "| sweep |" in table and "| report |" in table
    assert "| sweep: at least 10x the loop |" in table and "| report: at most 3 s |" in table
    assert "PDF writing" in table  # the report's breakdown
    # --merge: the earlier row stays, with its own date, after the new ones; the store holds all three
    assert "| workers | 200.00 | 150.00 | s | 1.33x | 2026-01-02 | kept from an earlier run |" in table
    assert table.index("| sweep |") < table.index("| report |") < table.index("| workers |")
    stored = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["name"] for r in stored] == ["sweep", "report", "workers"]
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png.name})" in table


@pytest.mark.slow  # a benchmark run (30-90 s)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the api benchmark needs wrk: apt-get install wrk")
def test_bench_api_quick_loads_a_real_service(tmp_path):
    out = tmp_path / "b.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "api", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    assert any(line.startswith("api ") and "POST /api/submissions" in line for line in done.stdout.splitlines())
    table = out.read_text()
    assert "| api |" in table and "Every POST answered 202" in table


def test_bench_refuses_an_unknown_name():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown benchmark 'nope'" in done.stderr


@pytest.mark.slow  # a benchmark run (30-90 s)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers on CPUs of their own need 2 CPUs")
def test_bench_scaling_quick_pins_each_worker_to_its_own_cpu(tmp_path):
    """Two real workers, each kept on one CPU with its sandbox children; the machine's own 2-CPU ceiling is measured
    in the same run."""
    out = tmp_path / "b.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "scaling", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("scaling "))
    assert "one CPU per worker" in row and "the 2 CPUs' own ceiling" in row
    table = out.read_text()
    assert "| scaling: the same, each worker with a CPU of its own |" in table
    cpus = sorted(os.sched_getaffinity(0))[:2]
    assert f"worker0 [{cpus[0]}]; worker1 [{cpus[1]}]" in table  # what the benchmark saw, sandbox children included
    full = f"{MAX_POINTS:.1f} / {MAX_POINTS:g}"
    assert f"Every grading done, mean score {full} (1 worker) and {full} (2 workers)" in table


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_bench_scaling_on_one_cpu_says_what_it_needs():
    cpu = str(min(os.sched_getaffinity(0)))
    done = subprocess.run(["taskset", "--cpu-list", cpu, sys.executable, str(ROOT / "bench" / "run.py"), "scaling"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert "scaling cannot run" in done.stderr and "may use 1 CPU(s)" in done.stderr
    assert "run it on a machine with 2 or more" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow  # a benchmark run (fresh processes that import torch)
def test_bench_api_import_quick_measures_a_light_app():
    done = subprocess.run([sys.executable, "-m", "bench.api_import", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imports neither torch nor matplotlib" in done.stdout, done.stdout
    assert "| ours: the app |" in done.stdout and "VmRSS" in done.stdout


@pytest.mark.slow  # a benchmark run (about a minute)
def test_bench_dashboard_and_portal_quick_serve_a_real_course(tmp_path):
    out = tmp_path / "b.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "dashboard", "portal", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    table = out.read_text()
    assert "| dashboard |" in table and "| portal |" in table
    assert "| assignment |" in table and "| status |" in table  # the portal's pages, each measured
