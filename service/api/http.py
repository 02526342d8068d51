"""uvicorn's httptools protocol with the limits it lacks: the request line and headers may take at most
LABGRADER_MAX_HEADER_BYTES and LABGRADER_MAX_HEADERS fields, and must arrive within LABGRADER_HEADER_TIMEOUT_SECONDS.

Without them one client could send a header that never ends: httptools joins its pieces into one bytes object
(quadratic time, all of it in memory; 64 MB held the event loop, and every other request, for 10 s) and nothing
ever times the headers out (a client that sends one byte every few seconds kept its connection for ever).
The bytes are counted before the parser sees them, so a refused request costs at most MAX_HEADER_BYTES of parsing.
`labgrader serve` and `up` run uvicorn with this protocol (service/cli.py)."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.settings import Settings

PROTOCOL = "service.api.http:GuardedHttpToolsProtocol"  # uvicorn imports it by name in each API process


@cache
def _limits() -> tuple[int, int, float]:
    """From the environment, like the app's settings (each API process reads its own)."""
    s = Settings()
    return s.max_header_bytes, s.max_headers, s.header_timeout_seconds


class _TooManyHeaders(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self.max_header_bytes, self.max_headers, self.header_timeout = _limits()
        self._reading_headers = True  # until the current request's headers are complete
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None
        self._completed = False  # a request ended in the bytes being fed

    # -- the clock: from a connection's start, or a request's first byte, to the end of its headers ---------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a client that connects and sends nothing is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._reading_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # pipelined headers stalled behind a response: no answer can fit in between
        elif self._header_bytes:
            self._refuse(408, f"The request's headers did not arrive within {self.header_timeout:g} seconds.")
        else:
            self.transport.close()

    # -- the size: bytes counted before the parser sees them ------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if not self._reading_headers:
            super().data_received(data)
            return
        self._arm()
        room = self.max_header_bytes - self._header_bytes
        head, rest = data[:room], data[room:]
        self._header_bytes += len(head)
        self._completed = False
        super().data_received(head)
        if not rest or self.transport.is_closing():
            return
        if self._reading_headers and not self._completed:  # these headers go on past the limit
            self._refuse(431, f"The request's line and headers are larger than {self.max_header_bytes} bytes.")
            return
        # the rest is a body, or the headers of a request pipelined behind one that ended in `head`: counted afresh
        self._header_bytes = 0
        self.data_received(rest)

    def on_message_begin(self) -> None:
        self._header_count = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, f"The request has more than {self.max_headers} header fields.")
            raise _TooManyHeaders  # stops the parser; uvicorn answers through send_400_response below
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_headers = True  # what comes next is the next request's
        self._completed = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def _refuse(self, status: int, message: str) -> None:
        """Answer with `status` and close: nothing of the request reaches the app."""
        self._disarm()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = f"{message} Send a smaller request (a few kB of headers), all at once.\n".encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, reason, len(body), body))  # fmt: skip
        self.transport.close()
