"""Alertmanager's active alerts and silences (API v2) for the inbox page.

Debian's Alertmanager ships no web UI: this is where a learner sees what is firing, inhibited or silenced.
Any failure becomes a note on the page (and a counted error), never an error page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from receiver.metrics import ALERTMANAGER_ERRORS

MAX_LISTED = 200


@dataclass
class AlertmanagerState:
    url: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    silences: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # why nothing is shown, in words


class AlertmanagerReader:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    async def read(self) -> AlertmanagerState:
        state = AlertmanagerState(self.url)
        if not self.url:
            state.note = "No Alertmanager configured (RECEIVER_ALERTMANAGER_URL is empty)."
            return state
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout) as client:
                alerts = await _get_list(client, "/api/v2/alerts")
                silences = await _get_list(client, "/api/v2/silences")
        except (httpx.HTTPError, ValueError) as exc:
            ALERTMANAGER_ERRORS.inc()
            state.note = f"Alertmanager at {self.url} did not answer its API ({type(exc).__name__}: {exc})."
            return state
        state.alerts = sorted(
            (a for a in alerts if isinstance(a, dict)), key=lambda a: str(a.get("startsAt", "")), reverse=True
        )[:MAX_LISTED]
        state.silences = [s for s in silences if isinstance(s, dict) and _state(s) in ("active", "pending")][
            :MAX_LISTED
        ]
        return state


async def _get_list(client: httpx.AsyncClient, path: str) -> list[Any]:
    response = await client.get(path)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, list):
        raise ValueError(f"{path} did not answer a JSON list")
    return body


def _state(item: dict[str, Any]) -> str:
    status = item.get("status")
    return str(status.get("state", "")) if isinstance(status, dict) else ""
