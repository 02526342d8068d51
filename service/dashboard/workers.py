"""Which workers are online, asked of them over the broker (Celery's remote control: a ping with a short timeout).
A worker's name says its device: `labgrader-cpu@host` or `labgrader-cuda@host`."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    device: str
    queues: tuple[str, ...]
    running: int


def workers_online(app: Celery, timeout: float = 1.0) -> list[WorkerInfo] | None:
    """The workers that answer within `timeout`; None when the broker cannot be reached."""
    try:
        inspect = app.control.inspect(timeout=timeout)
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
    except Exception:  # the broker is down: the page says so instead of failing
        return None
    out = []
    for name, qs in sorted(queues.items()):
        prefix = name.split("@", 1)[0]
        device = prefix.removeprefix("labgrader-") if prefix.startswith("labgrader-") else "unknown"
        out.append(WorkerInfo(name, device, tuple(q["name"] for q in qs), len(active.get(name, []))))
    return out
