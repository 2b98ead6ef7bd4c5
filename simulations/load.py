"""Load engines: a paced sender (exact counts and rates, in a thread) and Locust (in a subprocess).

Locust runs as `python -m locust -f simulations/locustfile.py --headless ...` in its own process: its gevent
monkey-patching then never touches this process (httpx, threads, rich), and stopping it is one signal to its
process group.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


class PacedSender(threading.Thread):
    """Sends `next(payloads)` to `url` at about `rps` requests/s on `workers` threads, until `count` requests
    were sent, `duration` seconds passed, or `stop()` (whichever first). `counts` tallies status codes."""

    def __init__(
        self,
        url: str,
        payloads: Iterator[dict[str, Any]],
        *,
        rps: float,
        duration: float | None = None,
        count: int | None = None,
        workers: int = 4,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(daemon=True, name="paced-sender")
        self.headers = headers or {}  # sent with every request (cost-spike: X-Tenant)
        self.url = url
        self.payloads = payloads
        self.rps = rps
        self.duration = duration
        self.count = count
        self.workers = workers
        self.timeout = timeout
        self.counts: Counter[str] = Counter()
        self.sent = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=self.timeout + 5)

    @property
    def finished(self) -> bool:
        return not self.is_alive()

    def _take(self, deadline: float | None) -> dict[str, Any] | None:
        """The next payload and its send slot (sleeping until then), or None when the run is over."""
        with self._lock:
            if self._halt.is_set() or (self.count is not None and self.sent >= self.count):
                return None
            slot = self._start + self.sent / self.rps
            if deadline is not None and slot >= deadline:
                return None
            self.sent += 1
            payload = next(self.payloads)
        if self._halt.wait(max(0.0, slot - time.monotonic())):
            return None
        return payload

    def run(self) -> None:
        self._start = time.monotonic()
        deadline = self._start + self.duration if self.duration is not None else None

        def work() -> None:
            with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
                while (payload := self._take(deadline)) is not None:
                    try:
                        r = client.post(self.url, json=payload)
                        key = str(r.status_code)
                    except httpx.HTTPError as exc:
                        key = type(exc).__name__
                    with self._lock:
                        self.counts[key] += 1

        threads = [threading.Thread(target=work, daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class LocustRun:
    """One headless Locust run of `user_classes` in a subprocess, with its stats read back at the end."""

    def __init__(
        self,
        user_classes: list[str],
        *,
        users: int,
        duration: float,
        ml_url: str,
        rag_url: str,
        env: dict[str, str] | None = None,
        spawn_rate: float | None = None,
    ) -> None:
        self.tmp: Path | None = None  # a directory of its own once started
        self.args = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--users", str(users), "--spawn-rate", str(spawn_rate or users),
            "--run-time", f"{max(1, int(duration))}s", "--stop-timeout", "5",
            "--only-summary", "--loglevel", "WARNING",
        ]  # fmt: skip
        self.user_classes = list(user_classes)
        self.env = {
            **os.environ,
            "ML_API_URL": ml_url,
            "RAG_API_URL": rag_url,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(LOCUSTFILE.parents[1]), os.environ.get("PYTHONPATH")])
            ),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._stats: dict[str, dict[str, float]] | None = None
        self._log_tail = ""

    def start(self) -> LocustRun:
        self.tmp = Path(tempfile.mkdtemp(prefix="sim-locust-"))
        cmd = [*self.args, "--csv", str(self.tmp / "run"), *self.user_classes]
        with (self.tmp / "locust.log").open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def finished(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ask Locust to stop (it writes its stats on the way out); kill its group if it does not. Its stats
        and log are then kept in memory and its temporary directory removed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._stats is None:
            self._stats = self._read_stats()
            self._log_tail = self._read_log_tail()
            if self.tmp is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return self.proc.returncode

    def stats(self) -> dict[str, dict[str, float]]:
        """Per request name (and "Aggregated"): requests, failures, median and 99th percentile in ms."""
        return self._stats if self._stats is not None else self._read_stats()

    def _read_stats(self) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        path = self.tmp / "run_stats.csv" if self.tmp is not None else None
        if path is None or not path.exists():
            return found
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                name = row.get("Name") or "?"
                if row.get("Type"):
                    name = f"{row['Type']} {name}"

                def num(key: str, row: dict[str, str] = row) -> float:
                    try:
                        return float(row.get(key) or 0)
                    except ValueError:
                        return 0.0

                found[name.strip()] = {
                    "requests": num("Request Count"),
                    "failures": num("Failure Count"),
                    "median_ms": num("Median Response Time"),
                    "p99_ms": num("99%"),
                }
        return found

    def log_tail(self) -> str:
        return self._log_tail if self._stats is not None else self._read_log_tail()

    def _read_log_tail(self, lines: int = 15) -> str:
        try:
            if self.tmp is None:
                return ""
            log = self.tmp / "locust.log"
            return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
