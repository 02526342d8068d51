"""Request headers are capped in size, number and time by `labgrader serve` itself (service/api/http.py): clients
that send a header that never ends, or send it one byte at a time, neither stall the API nor hold its memory."""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.migrate import upgrade
from service.settings import Settings

from .kit import make_settings
from .processes import Service

MB = 1 << 20


@pytest.fixture
def api(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'labgrader.db'}")
    upgrade(settings.sqlalchemy_url)
    svc = Service(settings, tmp_path)
    svc.start_api()
    yield svc
    svc.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def connect(svc: Service) -> socket.socket:
    return socket.create_connection(("127.0.0.1", svc.settings.port), timeout=30)


def reply(sock: socket.socket, timeout: float = 5) -> bytes:
    """What the server sends until it closes (or `timeout` passes)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def endless_header(svc: Service, limit_mb: int = 64) -> tuple[int, bytes]:
    """Send one header value without end, 1 MB at a time, until the server closes or `limit_mb` is sent."""
    with connect(svc) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: labgrader\r\nX-Endless: ")
        sent, chunk = 0, b"a" * MB
        try:
            while sent < limit_mb:
                sock.sendall(chunk)
                sent += 1
        except OSError:  # the server closed the connection: what it answered is still readable
            pass
        return sent, reply(sock)


@pytest.mark.slow  # floods a real server
def test_endless_headers_are_cut_off_while_health_stays_fast_and_memory_flat(api):
    pid = api.api.pid
    with httpx.Client() as client:
        for _ in range(10):
            client.get(f"{api.url}/api/health")
    before = rss_mb(pid)
    stop, outcomes, latencies, peak = threading.Event(), [], [], [before]

    def attacker() -> None:
        while not stop.is_set():  # reconnect at once after each refusal: 4 endless headers at any moment
            outcomes.append(endless_header(api))

    def health() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                started = time.perf_counter()
                assert client.get(f"{api.url}/api/health", timeout=30).status_code == 200
                latencies.append(time.perf_counter() - started)
                peak.append(rss_mb(pid))
                time.sleep(0.01)

    threads = [threading.Thread(target=attacker) for _ in range(4)] + [threading.Thread(target=health)]
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(60)
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    # cut off after 32 kB: what the client got into its socket buffers before the close is a few MB at most
    assert outcomes and all(sent < 16 for sent, _ in outcomes), [sent for sent, _ in outcomes]
    assert all(answer.startswith(b"HTTP/1.1 431 ") for _, answer in outcomes), outcomes[:5]
    assert b"larger than 32768 bytes" in outcomes[0][1]
    assert len(latencies) > 50 and p99 < 0.5, f"health p99 {p99 * 1000:.0f} ms over {len(latencies)} requests"
    assert max(peak) - before < 30, f"API RSS {before:.0f} MB -> {max(peak):.0f} MB"


@pytest.mark.slow  # waits out the header timeout
def test_slow_and_silent_clients_are_dropped_within_the_header_timeout(api):
    timeout = Settings.model_fields["header_timeout_seconds"].default  # what docs/deploy.md states: 10 s
    results: dict[str, tuple[float, bytes]] = {}

    def slowloris() -> None:
        with connect(api) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: labgrader\r\n")
            for _ in range(60):  # one more header byte every 2 s, never the end, until the server answers
                if select.select([sock], [], [], 2)[0]:
                    break
                sock.sendall(b"X")
            results["slow"] = (time.monotonic() - started, reply(sock, 1))

    def silent() -> None:
        with connect(api) as sock:
            started = time.monotonic()
            answer = reply(sock, 60)
            results["silent"] = (time.monotonic() - started, answer)

    threads = [threading.Thread(target=slowloris), threading.Thread(target=silent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    slow_took, slow_answer = results["slow"]
    assert timeout - 0.5 <= slow_took < timeout + 1.5, slow_took
    assert slow_answer.startswith(b"HTTP/1.1 408 ") and b"within 10 seconds" in slow_answer
    silent_took, silent_answer = results["silent"]
    assert timeout - 0.5 <= silent_took < timeout + 2 and silent_answer == b""
    assert httpx.get(f"{api.url}/api/health").status_code == 200


@pytest.mark.slow  # floods a real server
def test_header_count_and_size_limits_leave_ordinary_requests_alone(api):
    def send(payload: bytes) -> bytes:
        with connect(api) as sock:
            sock.sendall(payload)
            return reply(sock, 3)

    fields = b"".join(b"X-Field-%d: %d\r\n" % (i, i) for i in range(101))
    answer = send(b"GET /api/health HTTP/1.1\r\nHost: labgrader\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ") and b"more than 100 header fields" in answer
    fewer = b"".join(b"X-Field-%d: %d\r\n" % (i, i) for i in range(90))
    assert send(b"GET /api/health HTTP/1.1\r\nHost: labgrader\r\n" + fewer + b"\r\n").startswith(b"HTTP/1.1 200 ")
    # three pipelined requests of 20 kB of headers each: every one is under the cap and answered
    one = b"GET /api/health HTTP/1.1\r\nHost: labgrader\r\nX-Pad: " + b"p" * 20_000 + b"\r\n\r\n"
    assert send(one * 3).count(b"HTTP/1.1 200 ") == 3
    # a body of any size up to the upload cap passes through the header count untouched
    r = httpx.post(f"{api.url}/api/submissions", files={"file": ("lab.py", b"x = 1\n" * 150_000)},
                   data={"assignment": "init-reg"}, headers={"Authorization": "Bearer lg_unknown"})  # fmt: skip
    assert r.status_code == 401 and "Unknown token" in r.json()["detail"]
