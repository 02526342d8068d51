"""Hostile: leaves a busy thread, a detached subprocess and a double-forked daemon (new session) running,
all marked with LABGRADER_ORPHAN_MARKER in their command line, then behaves normally."""

import os
import subprocess
import sys
import threading
import time

from torch import nn

MARKER = "LABGRADER_ORPHAN_MARKER"
SLEEPER = f"import time  # {MARKER}\nwhile True: time.sleep(1)"



def linger():
    while True:
        time.sleep(0.1)


threading.Thread(target=linger, daemon=False).start()
subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", SLEEPER])
    os._exit(0)


def circle_model(sigma=None):
    return nn.Linear(2, 2)
