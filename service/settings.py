"""One settings object, read from LABGRADER_* environment variables, with defaults that work on a fresh machine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABGRADER_", extra="ignore")

    # where things live
    database_url: str = Field("", description="SQLAlchemy URL; empty: SQLite in STORAGE_DIR/labgrader.db")
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis)")
    storage_dir: Path = Field(Path("var"), description="uploads, results and reports; shared by API and workers")
    data_dir: Path | None = Field(None, description="MNIST IDX files (the grader's data folder)")

    # the API
    host: str = Field("127.0.0.1", description="address `labgrader serve` listens on")
    port: int = Field(8000, description="port `labgrader serve` listens on")
    api_workers: int = Field(1, description="API processes `labgrader serve` starts (one per spare core)")
    secure_cookies: bool = Field(False, description="send the dashboard cookie over HTTPS only (set behind TLS)")
    secret_key: str = Field("", description="signs dashboard sessions; empty: a key kept in STORAGE_DIR/secret_key")
    max_upload_bytes: int = Field(1_000_000, description="largest accepted submission file")
    rate_limit: int = Field(20, description="submissions per student and assignment within RATE_WINDOW_SECONDS")
    rate_window_seconds: int = Field(3600, description="the window of RATE_LIMIT")
    max_header_bytes: int = Field(
        32768, ge=1024, description="largest request line and headers together; larger: 431 and the connection closed"
    )
    max_headers: int = Field(100, ge=10, description="most header fields in one request; more: 431")
    header_timeout_seconds: float = Field(
        10, gt=0, description="seconds a client has to send a request's line and headers; later: 408 and closed"
    )
    max_connections: int = Field(
        1000, ge=1, description="connections one API process holds at once; a request beyond them is answered 503"
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1", description="proxies whose X-Forwarded-For names the client (comma-separated, or *)"
    )
    login_limit_per_address: int = Field(
        20, ge=1, description="instructor logins (dashboard or Basic auth) one client address may try per LOGIN_WINDOW"
    )
    login_limit_per_account: int = Field(
        10, ge=1, description="logins to one instructor email (existing or not) per LOGIN_WINDOW; a success resets it"
    )
    login_window_seconds: int = Field(900, ge=1, description="the window of the LOGIN_LIMIT_* settings")
    password_checks: int = Field(
        1, ge=1, description="Argon2 password checks one API process runs at once (each a fraction of a second of CPU)"
    )

    # the queue and the workers
    queue: str = Field("grading", description="Celery queue that submissions are sent to (GPU workers: grading-gpu)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where a worker runs the models")
    fast: bool = Field(False, description="grade with the assignment's [fast] budgets (development only)")
    worker_concurrency: int = Field(1, description="gradings one worker runs at once (1 per GPU)")
    grading_cpus: int = Field(
        0,
        ge=0,
        description="CPUs one grading may use (0: this machine's divided by "
        "WORKER_CONCURRENCY); with several workers on one machine, give each its share",
    )
    sandbox_uid: int = Field(
        65534,
        gt=0,
        description="unprivileged host uid the student's code runs as (a root worker maps it into the sandbox; "
        "the grader reads the variable itself, this checks it when the service starts)",
    )
    worker_nice: int = Field(10, description="CPU niceness of workers: the API stays responsive on a shared machine")
    soft_time_limit: int = Field(1500, description="seconds before a grading is asked to stop")
    time_limit: int = Field(1800, description="seconds before a grading is killed")
    visibility_timeout: int = Field(7200, description="seconds before Redis redelivers an unacknowledged task")
    broker_timeout: float = Field(
        10, gt=0, description="seconds to wait for Redis to connect or answer before a send is given up (swept later)"
    )
    max_attempts: int = Field(3, description="gradings of one submission that may be interrupted before it is failed")
    lease_seconds: int = Field(60, description="a grading whose heartbeat is older than this is taken as lost")
    heartbeat_seconds: float = Field(5, description="how often a grading renews its lease")
    requeue_after_seconds: int = Field(
        60, description="a queued submission missing from the broker this long is sent again"
    )
    sweep_interval_seconds: float = Field(15, description="how often the API looks for lost or stuck submissions")

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with a driver SQLAlchemy has here (psycopg 3 for PostgreSQL)."""
        url = self.database_url or f"sqlite:///{(self.storage_dir / 'labgrader.db').resolve()}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
