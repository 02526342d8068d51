"""What importing the API costs a fresh process (each `labgrader serve` worker, each test client): the import time
and the resident memory after `import service.api.app`, against a baseline process that imports torch and
matplotlib.pyplot first, as the app did before the API stopped loading them (the dashboard named its checks from
grader.checks and drew with matplotlib at import). The processes alternate, so that a busy machine slows both."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from bench.common import ROOT, Row

# Runs in the fresh process: the imports' wall time and VmRSS afterwards, and whether torch or matplotlib came in.
PROBE = """
import json, sys, time
t0 = time.perf_counter()
{heavy}
import service.api.app
seconds = time.perf_counter() - t0
rss_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({{"seconds": seconds, "rss_mb": rss_kb / 1024,
                  "heavy": sorted(m for m in ("torch", "matplotlib") if m in sys.modules)}}))
"""
BASELINE = PROBE.format(heavy="import torch, matplotlib.pyplot")
OURS = PROBE.format(heavy="")


def probe(code: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1]) | {"process": time.perf_counter() - t0}


def bench_api_import(quick: bool) -> Row:
    rounds = 2 if quick else 7
    probe(OURS)  # warm the file cache once, for both
    baseline, ours = [], []
    for _ in range(rounds):
        baseline.append(probe(BASELINE))
        ours.append(probe(OURS))

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    b_s, o_s = median(baseline, "seconds"), median(ours, "seconds")
    b_mb, o_mb = median(baseline, "rss_mb"), median(ours, "rss_mb")
    loaded = sorted({m for r in ours for m in r["heavy"]})
    what = (
        f"`import service.api.app` in a fresh process (median of {rounds}): {o_s:.2f} s and {o_mb:.0f} MB resident, "
        f"against {b_s:.2f} s and {b_mb:.0f} MB with torch and matplotlib.pyplot imported first (as before); "
        f"{'imports ' + ', '.join(loaded) if loaded else 'imports neither torch nor matplotlib'}"
    )
    details = [
        "| process | import s (median) | VmRSS MB (median) | whole process s (median) | heavy modules loaded |",
        "|---|---:|---:|---:|---|",
        f"| baseline: torch, matplotlib.pyplot, then the app | {b_s:.3f} | {b_mb:.0f} | "
        f"{median(baseline, 'process'):.3f} | {', '.join(baseline[0]['heavy']) or 'none'} |",
        f"| ours: the app | {o_s:.3f} | {o_mb:.0f} | {median(ours, 'process'):.3f} | {', '.join(loaded) or 'none'} |",
        "",
        f"Resident memory: {b_mb / o_mb:.2f}x less ({b_mb - o_mb:.0f} MB saved per API process).",
    ]
    return Row("api_import", b_s, o_s, what, unit="s", details=details)


if __name__ == "__main__":
    row = bench_api_import("--quick" in sys.argv)
    print(row.what)
    print("\n".join(row.details or []))
