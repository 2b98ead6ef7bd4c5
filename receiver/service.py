"""The receiver's state and lifecycle: the store, the fail window, the SMTP inbox, Alertmanager's reader and
the runbooks. Routes (app.py) only translate HTTP to these calls."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any
from urllib.parse import parse_qs

from receiver import strictjson
from receiver.alertmanager import AlertmanagerReader, AlertmanagerState
from receiver.inbox import render_inbox
from receiver.metrics import REJECTED
from receiver.parse import (
    MAX_SUMMARY_CHARS,
    alert_names,
    alert_status,
    slack_group_key,
    slack_shape_error,
    slack_texts,
    split_identity,
)
from receiver.runbooks import Runbooks
from receiver.settings import ReceiverSettings
from receiver.smtp import start_smtp
from receiver.store import Bounds, NotificationStore, dedup_key


class FailWindow:
    """While open, the Slack endpoints answer 500 (to show Alertmanager retrying)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.until = time.monotonic() + seconds if seconds > 0 else 0.0
        self.rejected = 0

    def set(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds if seconds > 0 else 0.0

    def remaining(self) -> float:
        # Rounded up to 0.1 s: a client polling until 0 never sees 0 while the window is still open.
        return math.ceil(max(0.0, self.until - time.monotonic()) * 10) / 10

    def state(self) -> dict[str, Any]:
        return {"failing_for_seconds": round(self.remaining(), 1), "rejected": self.rejected}


class SlackRefused(Exception):
    """A webhook call Slack would refuse: answered 400 with Slack's error word (and the field)."""

    def __init__(self, reason: str, answer: str) -> None:
        super().__init__(answer)
        self.reason = reason
        self.answer = answer


class ReceiverService:
    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        bounds = Bounds(
            max_kept=settings.max_kept,
            max_kept_bytes=settings.max_kept_bytes,
            log_max_bytes=settings.log_max_bytes,
            log_backups=settings.log_backups,
            dedup_seconds=settings.dedup_seconds,
        )
        self.store = NotificationStore(settings.log, bounds, echo=settings.echo)
        self.fail = FailWindow(settings.fail_seconds)
        timeout = settings.alertmanager_timeout_seconds
        self.alertmanager = AlertmanagerReader(settings.alertmanager_url, timeout)
        self.runbooks = Runbooks(settings.runbooks)
        self.smtp_port: int | None = None
        self._smtp: asyncio.Server | None = None

    async def start(self) -> None:
        s = self.settings
        self._smtp = await start_smtp(self.store, s.host, s.smtp_port, s.max_body_bytes)
        self.smtp_port = self._smtp.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()

    def ready(self) -> tuple[bool, dict[str, Any]]:
        notifications = len(self.store.list())
        return True, {"smtp_port": self.smtp_port, "notifications": notifications, **self.fail.state()}

    def slack(self, raw: bytes, content_type: str, path: str) -> tuple[int, str]:
        """One webhook call: (status code, Slack's answer word)."""
        if self.fail.remaining() > 0:
            self.fail.rejected += 1
            REJECTED.labels("fault_injected").inc()
            return 500, "receiver_fault_injected"
        try:
            payload = slack_payload(raw, content_type, self.settings.max_payload_depth)
        except SlackRefused as refused:
            REJECTED.labels(refused.reason).inc()
            return 400, refused.answer
        texts = slack_texts(payload)
        status = alert_status(*texts)
        group, alert_sets = split_identity(slack_group_key(payload))
        fields = {
            "path": path,
            "slack_channel": payload.get("channel"),
            "username": payload.get("username"),
            "summary": "\n".join(texts)[:MAX_SUMMARY_CHARS],
            "alerts": alert_names(*texts),
            "status": status,
            "group_key": group,
            "payload": payload,
        }
        # Alertmanager's own rule: same group, same firing and resolved alerts = nothing new. Without the lab
        # template's identity, only an identical payload is a duplicate.
        content = alert_sets if alert_sets is not None else payload
        self.store.record("slack", fields, key=dedup_key("slack", group, status, content))
        # A duplicate is answered ok too: Alertmanager must stop retrying what was already delivered.
        return 200, "ok"

    async def inbox_page(self, channel: str | None, alert: str | None) -> str:
        state: AlertmanagerState = await self.alertmanager.read()
        return render_inbox(self.store.list(), channel, alert, state, self.settings.page_refresh_seconds)


def slack_payload(raw: bytes, content_type: str, max_depth: int) -> dict[str, Any]:
    """The checked JSON object of a webhook call: a JSON body, or a form field `payload=` as Slack accepts."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SlackRefused("invalid_json", "invalid_payload: body is not UTF-8") from exc
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = parse_qs(text).get("payload", [text])[0]
    try:
        payload = strictjson.loads(text)
    except strictjson.TooDeep as exc:
        raise SlackRefused("too_deep", f"invalid_payload: nested deeper than {max_depth} levels") from exc
    except ValueError as exc:
        raise SlackRefused("invalid_json", "invalid_payload: not strict JSON") from exc
    if not isinstance(payload, dict):
        raise SlackRefused("invalid_shape", "invalid_payload: not a JSON object")
    if strictjson.depth(payload, max_depth) > max_depth:
        raise SlackRefused("too_deep", f"invalid_payload: nested deeper than {max_depth} levels")
    error = slack_shape_error(payload)
    if error is not None:
        raise SlackRefused("invalid_shape", f"invalid_payload: {error}")
    if not slack_texts(payload):
        raise SlackRefused("no_text", "no_text")
    return payload
