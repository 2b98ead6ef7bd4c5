"""`python -m ml_api` / `python -m rag_api`: run a service under uvicorn, with several workers if asked.

With more than one worker, prometheus-client's multiprocess mode keeps the metrics right: every worker writes
its samples to PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them. The directory must be set before
prometheus_client is imported by a worker and wiped before the workers start, so this launcher does both.

Every lab server (the receiver too) runs `BoundedHttpToolsProtocol`: uvicorn's httptools protocol plus a
bound on the request head's size (431) and on the time it may take to arrive (408).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from lab_common.metrics import wipe_multiprocess_dir
from lab_common.settings import HTTPServerSettings, ServiceSettings


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools stops parsing and reports a parser error."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head.

    httptools accumulates an unfinished header value in memory, so the head is counted as it arrives
    (`data_received`) and checked whole once parsed (`on_headers_complete`, for a head that came in one
    read). A timer armed when a connection opens, and when each request starts, closes a connection
    whose head is not complete in time (slow or silent clients).
    """

    _limits: HTTPServerSettings | None = None  # read once per process from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = BoundedHttpToolsProtocol._limits
        if limits is None:
            limits = BoundedHttpToolsProtocol._limits = HTTPServerSettings()
        self.max_head_bytes = limits.max_header_bytes
        self.head_timeout = limits.header_timeout_seconds
        self._in_head = False
        self._head_bytes = 0
        self._head_too_large = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, f"Request header fields larger than {self.max_head_bytes} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(431, f"Request header fields larger than {self.max_head_bytes} bytes.")
        else:
            super().send_400_response(msg)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(408, f"Request header not received within {self.head_timeout:g} s.")
        elif self.cycle is None:  # opened and never sent a byte
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a plain-text `message` and close: nothing of the request reached the app."""
        self._in_head = False
        self._cancel_head_timer()
        body = message.encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(b"".join([*head, body]))
        self.transport.close()


@contextlib.contextmanager
def on_shutdown_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` on the event loop as soon as SIGTERM or SIGINT arrives, while this block is open.

    uvicorn, on those signals, waits for every running request before it runs the app's lifespan
    shutdown; work that could keep requests running (an injected sleep) must hear about it first. The
    handler uvicorn installed is chained, not replaced. Outside the main thread (TestClient) it is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(sig: int, frame: Any) -> None:
        loop.call_soon_threadsafe(callback)
        chained = previous[sig]
        if callable(chained):  # uvicorn's Server.handle_exit: begins the graceful shutdown
            chained(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_service(
    app: str, *, host: str, port: int, workers: int, service: str, log_level: str = "info"
) -> None:
    import uvicorn

    if workers > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path("var") / "multiproc" / service))
        wipe_multiprocess_dir()
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",  # the default asyncio loop with several workers adds ~44 ms per keep-alive request
        http=BoundedHttpToolsProtocol,
        access_log=False,
        log_level=log_level.lower(),
    )


def serve(app: str, settings: ServiceSettings, service: str) -> None:
    """`python -m ml_api` / `python -m rag_api`: `app` (module:attribute) where its settings say."""
    run_service(
        app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        service=service,
        log_level=settings.log_level,
    )
