"""The benchmark script runs and writes its table (a smoke run with --quick; timings are never asserted)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_the_table(tmp_path):
    out = tmp_path / "benchmarks.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "sweep", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "identical logits" in done.stdout
    assert "| sweep |" in out.read_text()


def test_bench_refuses_an_unknown_name():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown benchmark 'nope'" in done.stderr
