"""Notifications in memory (for GET /notifications) and appended to a JSONL file (for the record)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO


def parse_since(value: str) -> float:
    """An epoch timestamp from `1733140000`, `1733140000.5` or an ISO 8601 time (naive = UTC)."""
    try:
        return float(value)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class NotificationStore:
    """Thread-safe: the HTTP handlers and the SMTP handler both record here."""

    def __init__(self, path: Path, max_kept: int = 10_000, echo: bool = True, out: TextIO | None = None):
        self.path = path
        self.echo = echo
        self.out = out or sys.stdout
        self._items: deque[dict[str, Any]] = deque(maxlen=max_kept)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        # A restart keeps the history the file already holds; a torn last line is skipped, not fatal.
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(item, dict) and "received_at_epoch" in item:
                    self._items.append(item)

    def record(self, channel: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        item = {
            "channel": channel,
            "received_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "received_at_epoch": now,
            **fields,
        }
        line = json.dumps(item, ensure_ascii=False, default=str)
        with self._lock:
            self._items.append(item)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        if self.echo:
            self._print(item)
        return item

    def list(self, channel: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
        return [
            item
            for item in items
            if (channel is None or item["channel"] == channel)
            and (since is None or item["received_at_epoch"] >= since)
        ]

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self.path.write_text("", encoding="utf-8")
        return count

    def _print(self, item: dict[str, Any]) -> None:
        status = (item.get("status") or "?").upper()
        names = ", ".join(item.get("alerts") or []) or "(no alert name found)"
        if item["channel"] == "slack":
            where = f"slack {item.get('path', '')} channel={item.get('slack_channel') or '-'}"
            summary = item.get("summary", "")
        else:
            where = f"email to={','.join(item.get('to') or [])}"
            summary = item.get("subject", "")
        lines = [
            f"=== {item['received_at']}  {where}",
            f"    {status:<8} {names}",
            *(f"    | {line}" for line in summary.splitlines()[:6]),
        ]
        print("\n".join(lines), file=self.out, flush=True)
