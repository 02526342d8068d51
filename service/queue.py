"""The Celery app: Redis broker, settings for long jobs, one task that carries a submission id and generation.
The database is the truth; a message only says "look at this submission"."""

from __future__ import annotations

import base64
import json
import logging

import redis
from celery import Celery

from service.settings import Settings

TASK = "labgrader.grade_submission"
log = logging.getLogger(__name__)


def make_celery(settings: Settings) -> Celery:
    app = Celery("labgrader", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a message is acknowledged after grading, so a lost worker's task comes back
        task_reject_on_worker_lost=True,  # ... also when the pool process dies (SIGKILL, out of memory)
        worker_prefetch_multiplier=1,  # a worker holds only the task it grades
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # without these a broker that accepts connections but never answers holds a send, and the API
            # thread that makes it, for ever; the worker's own polls (BRPOP, 1 s) fit well within them
            "socket_timeout": settings.broker_timeout,
            "socket_connect_timeout": settings.broker_timeout,
        },
        task_soft_time_limit=settings.soft_time_limit,
        task_time_limit=settings.time_limit,
        task_ignore_result=True,  # results live in the database
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_max_tasks_per_child=50,  # bounds slow leaks of a long-lived grading process
    )
    return app


def send(app: Celery, queue: str, submission_id: str, generation: int) -> bool:
    """Put one grading on the queue; False (logged) when the broker is unreachable: the sweep sends it later."""
    try:
        app.send_task(TASK, args=[submission_id, generation], queue=queue, retry=False)
        return True
    except Exception as e:  # kombu raises several connection errors; the submission is stored either way
        log.warning("could not queue submission %s: %s (the sweep will retry)", submission_id, e)
        return False


def broker_answers(broker_url: str) -> bool:
    try:
        with redis.Redis.from_url(broker_url, socket_timeout=3) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def submissions_in_broker(broker_url: str, queue: str) -> set[str] | None:
    """Ids of the submissions whose message waits in `queue` or is held unacknowledged by a worker; None when
    Redis cannot be read (then the sweep resends every old queued submission)."""
    try:
        with redis.Redis.from_url(broker_url, socket_timeout=5) as client:
            held = [json.loads(v) for v in client.hvals("unacked")]  # [message, exchange, routing key] each
            raw = [*client.lrange(queue, 0, -1), *(json.dumps(h[0]) for h in held if h[2] == queue)]
    except (redis.RedisError, ValueError, IndexError, TypeError) as e:
        log.warning("cannot read the broker's queue %s: %s", queue, e)
        return None
    ids = set()
    for message in raw:
        try:
            payload = json.loads(message)
            if payload["headers"].get("task") == TASK:
                args = json.loads(base64.b64decode(payload["body"]))[0]  # body: [args, kwargs, embed]
                ids.add(str(args[0]))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            continue
    return ids
