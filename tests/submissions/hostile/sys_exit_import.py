"""Hostile: calls sys.exit(3) at the top level, as a script would."""

import sys

print("done with my experiments")
sys.exit(3)
