"""Sandbox for running untrusted student submissions in a limited child process.

The child only ever returns data (JSON and safetensors), which :func:`run_task` validates.
"""

from grader.sandbox.isolation import detect_isolation
from grader.sandbox.protocol import ContractError, Isolation, Limits, SandboxFailure
from grader.sandbox.reply import SandboxReply
from grader.sandbox.runner import run_task

__all__ = [
    "ContractError",
    "Isolation",
    "Limits",
    "SandboxFailure",
    "SandboxReply",
    "detect_isolation",
    "run_task",
]
