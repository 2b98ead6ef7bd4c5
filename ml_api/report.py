"""`GET /drift/report`: Evidently's HTML report of the drift window, cached per window state, built off the
serving path, one at a time.

One report costs 0.6-2.5 s of CPU. Built in a thread of the serving process it holds the GIL against the
request path (4 callers moved /predict p99 from 3.4 to 287 ms, issue 11 #14), so it is built in one child
process instead (started on the first report, with the reference sent once), and:
- the report of a window state is kept: while no ticket enters or leaves the window, callers get it again;
- one report is built at a time: callers queue behind it, and a caller that arrived while a report of a
  newer state than its own was being started gets that one instead of building another.
Counted in `ml_drift_reports_total{outcome}`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import pandas as pd

from ml_api import metrics, report_worker
from ml_api.drift import DriftWindow


@dataclass(frozen=True)
class _Report:
    version: int  # the window state it shows
    started: float  # monotonic time its snapshot was taken
    html: str


class ReportUnavailable(Exception):
    """The report process died while building (out of memory, killed): 503; the next call starts another."""


class DriftReporter:
    def __init__(self, reference: pd.DataFrame, window: DriftWindow, *, min_window: int) -> None:
        self.reference = reference
        self.window = window
        self.min_window = min_window
        self._lock = asyncio.Lock()
        self._last: _Report | None = None
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking a process that runs threads (event loop, metric flusher) can copy held locks.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=report_worker.start,
                initargs=(self.reference, os.getpid()),
            )
        return self._pool

    async def report(self) -> str | None:
        """The HTML report of the current window, or None while it holds fewer than `min_window` tickets."""
        arrived = time.monotonic()
        async with self._lock:
            frame, version = self.window.versioned_snapshot()
            last = self._last
            if last is not None and (last.version == version or last.started >= arrived):
                metrics.DRIFT_REPORTS["cached"].inc()
                return last.html
            if len(frame) < self.min_window:
                metrics.DRIFT_REPORTS["insufficient_data"].inc()
                return None
            started = time.monotonic()
            html = await self._build(frame)
            self._last = _Report(version, started, html)
            metrics.DRIFT_REPORTS["built"].inc()
            return html

    async def _build(self, frame: pd.DataFrame) -> str:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), report_worker.render, frame)
        except BrokenProcessPool:  # the child died (OOM, kill): the next report starts a fresh one
            self._pool = None
            metrics.DRIFT_REPORTS["error"].inc()
            raise ReportUnavailable("the drift report process stopped; try again") from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # waits for a report being built (seconds at most) so that the child never outlives the service
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
