"""The API process stays light: importing the app (and building it) loads neither torch nor matplotlib, which
only the worker (grading) and the report need. Checked in a fresh interpreter, since this test process may have
imported them already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import service.api.app
from service.settings import Settings
service.api.app.create_app(Settings(storage_dir=sys.argv[1], secret_key="x" * 32))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "matplotlib"))
assert not heavy, heavy[:10]
print("light")
"""


def test_importing_and_building_the_api_loads_neither_torch_nor_matplotlib(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "light", done.stderr[-3000:]


def test_the_one_liner_holds():
    code = "import service.api.app, sys; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
