"""HTTP side: the Slack incoming-webhook protocol, the notification list, health and a failure knob."""

from __future__ import annotations

import json
import math
import time
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from receiver.parse import alert_names, alert_status, slack_texts
from receiver.settings import ReceiverSettings
from receiver.smtp import start_smtp
from receiver.store import NotificationStore, parse_since

CHANNELS = ("slack", "email")


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


class FailRequest(BaseModel):
    seconds: float = Field(ge=0, le=3600, description="Answer 500 on the Slack endpoints for this long.")


def create_app(settings: ReceiverSettings | None = None) -> FastAPI:
    settings = settings or ReceiverSettings()
    store = NotificationStore(settings.log, max_kept=settings.max_kept, echo=settings.echo)
    fail = FailWindow(settings.fail_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        smtp = await start_smtp(store, settings.host, settings.smtp_port)
        app.state.smtp_port = smtp.sockets[0].getsockname()[1]
        try:
            yield
        finally:
            smtp.close()
            await smtp.wait_closed()

    app = FastAPI(title="Observability Lab alert receiver", version="0.1.0", lifespan=lifespan)
    app.state.store = store
    app.state.fail = fail

    async def slack_webhook(request: Request) -> PlainTextResponse:
        if fail.remaining() > 0:
            fail.rejected += 1
            return PlainTextResponse("receiver_fault_injected", status_code=500)
        raw = await request.body()
        payload = _slack_payload(raw, request.headers.get("content-type", ""))
        if payload is None:
            return PlainTextResponse("invalid_payload", status_code=400)
        texts = slack_texts(payload)
        if not texts:
            return PlainTextResponse("no_text", status_code=400)
        store.record(
            "slack",
            {
                "path": request.url.path,
                "slack_channel": payload.get("channel"),
                "username": payload.get("username"),
                "summary": "\n".join(texts)[:4000],
                "alerts": alert_names(*texts),
                "status": alert_status(*texts),
                "payload": payload,
            },
        )
        return PlainTextResponse("ok")

    # Slack's real hook URLs look like /services/T000/B000/XXXX; the lab's short form is /slack.
    app.add_api_route("/slack", slack_webhook, methods=["POST"], include_in_schema=True)
    app.add_api_route("/services/{a}/{b}/{c}", slack_webhook, methods=["POST"])

    @app.get("/notifications")
    def list_notifications(
        channel: str | None = Query(default=None, description="slack or email"),
        since: str | None = Query(default=None, description="ISO 8601 time or epoch seconds"),
    ) -> JSONResponse:
        if channel is not None and channel not in CHANNELS:
            raise HTTPException(422, f"channel must be one of {list(CHANNELS)}")
        try:
            since_epoch = parse_since(since) if since else None
        except ValueError as exc:
            raise HTTPException(422, f"since: not an ISO 8601 time or epoch seconds: {since!r}") from exc
        items = store.list(channel, since_epoch)
        return JSONResponse({"count": len(items), "notifications": items})

    @app.delete("/notifications")
    def clear_notifications() -> dict[str, int]:
        return {"cleared": store.clear()}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "smtp_port": getattr(app.state, "smtp_port", None),
            "notifications": len(store.list()),
            "failing_for_seconds": round(fail.remaining(), 1),
            "rejected": fail.rejected,
        }

    @app.post("/admin/fail")
    def set_fail(body: FailRequest) -> dict[str, Any]:
        fail.set(body.seconds)
        return {"failing_for_seconds": round(fail.remaining(), 1), "rejected": fail.rejected}

    @app.get("/admin/fail")
    def get_fail() -> dict[str, Any]:
        return {"failing_for_seconds": round(fail.remaining(), 1), "rejected": fail.rejected}

    return app


def _slack_payload(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """The JSON object of a webhook call: a JSON body, or a form field `payload=` as Slack also accepts."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    candidates = [text]
    if content_type.startswith("application/x-www-form-urlencoded"):
        candidates.append(parse_qs(text).get("payload", [""])[0])
    for candidate in candidates:
        try:
            payload = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(payload, dict):
            return payload
    return None
