"""The inbox (bounded, in memory) and the archive (a rotated JSONL file) of every notification received.

Clearing the inbox writes a marker line to the archive instead of truncating it: the history stays on disk and
a restart does not bring the cleared notifications back.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from receiver import console, strictjson
from receiver.metrics import BAD_ARCHIVE_LINES, DUPLICATES, EVICTED, NOTIFICATIONS
from receiver.parse import slack_shape_error

CHANNELS = ("slack", "email")
CLEARED = "cleared_at_epoch"


def parse_since(value: str) -> float:
    """An epoch timestamp from `1733140000`, `1733140000.5` or an ISO 8601 time (naive = UTC)."""
    try:
        seconds = float(value)
    except ValueError:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return seconds


@dataclass(frozen=True)
class Bounds:
    max_kept: int = 10_000
    max_kept_bytes: int = 64 * 1024 * 1024
    log_max_bytes: int = 20 * 1024 * 1024
    log_backups: int = 3
    dedup_seconds: float = 600.0


def dedup_key(channel: str, group_key: str | None, status: str | None, content: Any) -> str:
    """Same channel, Alertmanager group, status and content = the same notification sent again."""
    digest = hashlib.sha256(strictjson.dumps(content).encode()).hexdigest()
    return f"{channel}|{group_key or ''}|{status or ''}|{digest}"


class NotificationStore:
    """Thread-safe: the HTTP handlers and the SMTP handler both record here."""

    def __init__(
        self, path: Path, bounds: Bounds | None = None, echo: bool = True, out: TextIO | None = None
    ) -> None:
        self.path = path
        self.bounds = bounds or Bounds()
        self.echo = echo
        self.out = out or sys.stdout
        self._items: deque[tuple[dict[str, Any], int]] = deque()
        self._kept_bytes = 0
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._load()
        self._log_bytes = self.path.stat().st_size if self.path.exists() else 0

    # ---- archive ----

    def _archives(self) -> list[Path]:
        """Rotated files oldest first, then the current file."""
        backups = [self._backup(n) for n in range(self.bounds.log_backups, 0, -1)]
        return [p for p in [*backups, self.path] if p.exists()]

    def _backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _load(self) -> None:
        # A restart keeps the inbox the archive holds; a torn or invalid line is skipped and counted.
        for path in self._archives():
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    self._load_line(line)

    def _load_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            item = strictjson.loads(line)
        except ValueError:
            item = None
        if isinstance(item, dict) and isinstance(item.get(CLEARED), int | float):
            self._items.clear()
            self._kept_bytes = 0
        elif _is_notification(item):
            self._keep(item, len(line.encode("utf-8")))
        else:
            BAD_ARCHIVE_LINES.inc()

    def _append(self, line: str) -> None:
        size = len(line.encode("utf-8")) + 1
        if self._log_bytes and self._log_bytes + size > self.bounds.log_max_bytes:
            self._rotate()
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        self._log_bytes += size

    def _rotate(self) -> None:
        backups = self.bounds.log_backups
        oldest = self._backup(backups) if backups else self.path
        if oldest.exists():
            EVICTED.labels("archive").inc(_count_notifications(oldest))
            oldest.unlink()
        for n in range(backups - 1, 0, -1):
            older = self._backup(n)
            if older.exists():
                older.rename(self._backup(n + 1))
        if backups and self.path.exists():
            self.path.rename(self._backup(1))
        self._log_bytes = 0

    # ---- inbox ----

    def _keep(self, item: dict[str, Any], size: int) -> None:
        self._items.append((item, size))
        self._kept_bytes += size
        while len(self._items) > 1 and (
            len(self._items) > self.bounds.max_kept or self._kept_bytes > self.bounds.max_kept_bytes
        ):
            _, evicted = self._items.popleft()
            self._kept_bytes -= evicted
            EVICTED.labels("inbox").inc()

    def _is_duplicate(self, key: str, now: float) -> bool:
        """The same as the LAST notification of its group (channel + group key) within the window, compared
        with the last one only: an alert that resolved and fires again is news, though it repeats one."""
        window = self.bounds.dedup_seconds
        while self._seen and next(iter(self._seen.values()))[1] < now - window:
            self._seen.popitem(last=False)
        if window <= 0:
            return False
        group = key.rsplit("|", 2)[0]  # dedup_key: channel|group|status|digest
        last = self._seen.get(group)
        if last is not None and last[0] == key:
            return True
        self._seen.pop(group, None)
        self._seen[group] = (key, now)
        if len(self._seen) > self.bounds.max_kept:  # a flood of distinct groups: forget the oldest
            self._seen.popitem(last=False)
        return False

    def record(self, channel: str, fields: dict[str, Any], key: str | None = None) -> dict[str, Any] | None:
        """Store one notification; None (and counted) when `key` was seen within the dedup window."""
        now = time.time()
        item = {
            "channel": channel,
            "received_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "received_at_epoch": now,
            **fields,
        }
        line = strictjson.dumps(item)
        with self._lock:
            if key is not None and self._is_duplicate(key, now):
                DUPLICATES.labels(channel).inc()
                return None
            self._append(line)
            self._keep(item, len(line.encode("utf-8")))
        NOTIFICATIONS.labels(channel).inc()
        if self.echo:
            console.echo(item, self.out)
        return item

    def list(self, channel: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = [item for item, _ in self._items]
        return [
            item
            for item in items
            if (channel is None or item["channel"] == channel)
            and (since is None or item["received_at_epoch"] >= since)
        ]

    def clear(self) -> int:
        """Empty the inbox; the archive keeps every notification and gets a marker line."""
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._kept_bytes = 0
            self._seen.clear()
            self._append(strictjson.dumps({CLEARED: time.time()}))
        return count


def _is_notification(item: Any) -> bool:
    """What a reader of the inbox relies on (a line edited by hand may hold anything)."""
    if not (
        isinstance(item, dict)
        and item.get("channel") in CHANNELS
        and isinstance(item.get("received_at_epoch"), int | float)
        and isinstance(item.get("received_at"), str)
        and isinstance(item.get("alerts", []), list)
        and all(isinstance(name, str) for name in item.get("alerts", []))
        and isinstance(item.get("status"), str | None)
    ):
        return False
    if item["channel"] == "slack":
        payload = item.get("payload")
        return isinstance(payload, dict) and slack_shape_error(payload) is None
    texts = ("subject", "body", "html", "from", "mail_from")
    return all(isinstance(item.get(key, ""), str | None) for key in texts) and isinstance(
        item.get("to", []), list
    )


def _count_notifications(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip() and not line.startswith(b'{"' + CLEARED.encode()))
