"""Request metrics middleware and the /metrics exposition, multiprocess-aware.

Each service calls `request_metrics(prefix)` once in its own metrics.py, so every metric of a service is
declared in that service's metrics.py, while the middleware logic lives here only once.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))  # 0.1 .. 1.0
# Requests no route serves (404: unknown path; 405: a method the route does not take) share one label pair,
# so a scan of paths x methods adds one histogram, not one per (route, method) it tries.
UNMATCHED = "other"
UNMATCHED_METHOD = "OTHER"
HTTP_DURATION_QUEUE = "http_request_duration"  # `queue` label of the request latency's deferred observations


@dataclass(frozen=True)
class RequestMetrics:
    requests: Counter
    duration: Histogram
    # Deferred observations that could not be kept (see DeferredHistogram), by queue: never silent.
    dropped_observations: Counter


def request_metrics(prefix: str) -> RequestMetrics:
    """`<prefix>_http_requests_total{endpoint,method,status}`, its latency histogram and
    `<prefix>_deferred_observations_dropped_total{queue}` (queue `http_request_duration` is this one's)."""
    duration = Histogram(
        f"{prefix}_http_request_duration_seconds",
        "HTTP request latency by route template.",
        ["endpoint", "method"],
        buckets=LATENCY_BUCKETS,
    )
    dropped = Counter(
        f"{prefix}_deferred_observations_dropped",
        "Histogram observations lost before reaching the histogram (pending queue full or a failed flush).",
        ["queue"],
    )
    dropped.labels(HTTP_DURATION_QUEUE)  # present at 0 from the start, so that increase() sees the first drop
    return RequestMetrics(
        requests=Counter(
            f"{prefix}_http_requests",
            "HTTP requests by route template, method and status code.",
            ["endpoint", "method", "status"],
        ),
        duration=duration,
        dropped_observations=dropped,
    )


def route_labels(scope: Scope) -> tuple[str, str]:
    """(endpoint, method) labels: the matched route's path template (bounded), never the raw path.

    The router stores the route it matched in the scope it shares with us, also when only the path
    matched (then it answers 405): a method the route does not serve counts as unmatched, like a path
    no route knows (404s, scanners).
    """
    route = scope.get("route")
    if route is None:
        return UNMATCHED, UNMATCHED_METHOD
    method = scope["method"]
    methods = getattr(route, "methods", None)  # None: a mount, which takes every method
    if methods is not None and method not in methods:
        return UNMATCHED, UNMATCHED_METHOD
    return getattr(route, "path", UNMATCHED), method


class BodyTooLarge(HTTPException):
    """Raised by the limited `receive` when a streamed body passes the limit: the app's HTTPException
    handler answers 413 (an ordinary exception would become FastAPI's 400 "error parsing the body")."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class RequestMetricsMiddleware:
    """Pure ASGI middleware: request metrics and, with `max_body_bytes`, the body-size limit (413).

    One layer for both: every stacked layer costs a coroutine and wrapped send/receive callables on every
    request. Requests with a Content-Length are judged by it (HTTP framing means the server never hands
    the app more), so only bodies without one, chunked ones, get a counting `receive`.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._skip = {"/metrics"}
        # labels() costs a lock and a dict lookup per call; the label sets are bounded, so keep the children.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        limit = self.max_body_bytes
        too_large = False
        if limit is not None:
            length = None
            chunked = False
            for key, value in scope["headers"]:
                if key == b"content-length":
                    length = value
                elif key == b"transfer-encoding":
                    chunked = True
            if length is None or chunked or not length.isdigit():
                receive = _limited_receive(receive, limit)
            elif int(length) > limit:
                too_large = True
        if scope["path"] in self._skip:
            if too_large:
                await _too_large(limit)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        status = 0  # until the response starts; a request that never answers counts as a 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if too_large:
                await _too_large(limit)(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        except BodyTooLarge as exc:
            # Only without an HTTPException handler inside (FastAPI always has one): answer it here.
            if status:
                raise
            await JSONResponse({"detail": exc.detail}, status_code=413)(scope, receive, send_wrapper)
        finally:
            self.record(scope, status or 500, time.perf_counter() - start)

    def record(self, scope: Scope, status: int, elapsed: float) -> None:
        endpoint, method = route_labels(scope)
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(endpoint, method, str(status)),
                # Latency observations are folded in at scrape time, like the services' own.
                DeferredHistogram(
                    self.metrics.duration.labels(endpoint, method),
                    dropped=self.metrics.dropped_observations.labels(HTTP_DURATION_QUEUE),
                ),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)


def _limited_receive(receive: Receive, limit: int) -> Receive:
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited_receive


def _too_large(limit: int | None) -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)


# Pending observations that make the observing call flush them itself: between the periodic flushes, a busy
# process (4 clients posting 1,000-ticket batches: over 150,000 tickets/s measured) would overflow any fixed
# queue.
FLUSH_AT = 20_000
# The hard bound: reached only when flushes fail or cannot keep up; each observation past it is counted.
MAX_PENDING = 200_000


class _Deferred:
    """Observations queued on the hot path (one deque append) and folded into prometheus histograms in bulk
    (numpy) by `flush()`: at every /metrics scrape, every few seconds in the background, and by the
    observing call itself once `flush_at` are pending. Observations that cannot be kept (the queue at
    `max_pending`, or a flush that raised) are counted in `dropped`, never lost silently."""

    def __init__(self, dropped: Counter | None, flush_at: int, max_pending: int) -> None:
        if flush_at < 1 or max_pending < 1:
            raise ValueError("flush_at and max_pending must be >= 1")
        self.dropped = dropped
        self.flush_at = min(flush_at, max_pending)
        self.max_pending = max_pending
        self.dropped_count = 0  # also kept here: `dropped` may be absent (tests, tools)
        self._pending: deque[Any] = deque()
        self._flush_lock = threading.Lock()
        _DEFERRED.append(self)
        _start_background_flush()

    def _make_room(self) -> bool:
        """Called by `observe` once `flush_at` are pending: flush now; False when still full (then the
        observation is counted as dropped instead of growing the queue past `max_pending`)."""
        self.flush()
        if len(self._pending) >= self.max_pending:
            self._drop(1)
            return False
        return True

    def _drop(self, n: int) -> None:
        self.dropped_count += n
        if self.dropped is not None:
            self.dropped.inc(n)

    def flush(self) -> None:
        with self._flush_lock:
            pending = self._pending
            items = [pending.popleft() for _ in range(len(pending))]
            if not items:
                return
            try:
                self._fold(items)
            except Exception:  # never into a request or the flush thread; the lost items are counted
                log.exception("folding %d deferred observations failed", len(items))
                self._drop(len(items))

    def _fold(self, items: list[Any]) -> None:
        raise NotImplementedError


class DeferredHistogram(_Deferred):
    """A histogram whose observations cost one deque append on the hot path (see `_Deferred`).

    prometheus-client's observe() takes a lock per bucket and sum update (~3 µs); a request that observes
    several inputs pays that several times. Give it an unlabelled histogram or one labelled child.
    """

    def __init__(
        self,
        histogram: Histogram,
        *,
        dropped: Counter | None = None,
        flush_at: int = FLUSH_AT,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.histogram = histogram
        self._bounds = np.asarray(histogram._upper_bounds, dtype=float)
        super().__init__(dropped, flush_at, max_pending)

    def observe(self, value: float) -> None:
        if len(self._pending) >= self.flush_at and not self._make_room():
            return
        self._pending.append(value)

    def _fold(self, items: list[Any]) -> None:
        _fold(self.histogram, self._bounds, np.asarray(items, dtype=float))


class DeferredHistograms(_Deferred):
    """Several histograms observed together, one value each per event (say, every input of a prediction):
    one deque append of a tuple on the hot path instead of one per histogram. Give it unlabelled
    histograms or labelled children."""

    def __init__(
        self,
        histograms: Sequence[Histogram],
        *,
        dropped: Counter | None = None,
        flush_at: int = FLUSH_AT,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.histograms = tuple(histograms)
        self._bounds = [np.asarray(h._upper_bounds, dtype=float) for h in self.histograms]
        super().__init__(dropped, flush_at, max_pending)

    def observe(self, values: tuple[float, ...]) -> None:
        """`values` in the order of `histograms`."""
        if len(self._pending) >= self.flush_at and not self._make_room():
            return
        self._pending.append(values)

    def _fold(self, items: list[Any]) -> None:
        matrix = np.array(items, dtype=float).reshape(len(items), len(self.histograms))
        for histogram, bounds, column in zip(self.histograms, self._bounds, matrix.T, strict=True):
            _fold(histogram, bounds, column)


def _fold(histogram: Histogram, bounds: np.ndarray, values: np.ndarray) -> None:
    """Add many observations to a prometheus Histogram at once."""
    if values.size == 0:
        return
    # The bucket an observation lands in is the first bound >= it, as in Histogram.observe.
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(values.sum()))


_DEFERRED: list[_Deferred] = []
FLUSH_INTERVAL_SECONDS = 5.0
_flusher_pid: int | None = None


def _start_background_flush() -> None:
    """Also flush every few seconds, once per process: with several workers, the one answering a scrape
    aggregates the others' files, which only hold what those workers have flushed."""
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    _flusher_pid = os.getpid()

    def loop() -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_SECONDS)
            flush_deferred()

    threading.Thread(target=loop, name="deferred-histogram-flush", daemon=True).start()


def flush_deferred() -> None:
    for histogram in _DEFERRED:
        histogram.flush()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def render_metrics() -> tuple[bytes, str]:
    """The exposition body. With several workers, a fresh registry aggregates every worker's files."""
    flush_deferred()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        registry.register(_WithoutNaNGauges(multiprocess.MultiProcessCollector(None)))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class _WithoutNaNGauges:
    """Multiprocess files cannot delete a series, so a gauge that must be absent is written as NaN;
    dropping those samples makes it absent in the exposition too, as in single-process mode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Any]:
        for metric in self.inner.collect():
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
            yield metric


def wipe_multiprocess_dir() -> None:
    """Called once by the parent before workers start: stale files would resurrect old counts."""
    path = multiprocess_dir()
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
