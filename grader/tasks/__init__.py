"""Trusted tasks: the lab's training and measuring, on models rebuilt from captured graphs (grader.tasks.lab).

They run in sandboxed children that never import the student's file (defence in depth: a graph is data, and a
rebuilt model runs only whitelisted torch operations, but its sizes still come from the student)."""

from grader.tasks.lab import TASKS, Models

__all__ = ["TASKS", "Models"]
