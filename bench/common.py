"""What every benchmark shares: the row it reports and the reference solution."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
REFERENCE = ROOT / "examples" / "reference_solution.py"


@dataclass
class Row:
    """One figure: a baseline and ours, both measured in the same run (seconds, or another unit named in `unit`).
    ratio = baseline / ours, so above 1 means ours is faster (for a rate, pass the times it takes per item)."""

    name: str
    baseline: float
    ours: float
    what: str
    unit: str = "s"
    details: list[str] | None = None  # extra lines for docs/benchmarks.md (a profile, a breakdown)
    measured: str = ""  # the day it was measured (rows kept by --merge keep theirs)

    @property
    def ratio(self) -> float:
        return self.baseline / self.ours if self.ours else float("inf")


def reference_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_solution", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
