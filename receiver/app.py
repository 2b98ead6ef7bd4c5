"""HTTP side: the Slack incoming-webhook protocol, the notification list, the inbox page, the runbooks,
health and a failure knob. Routes stay thin: checking lives in parse.py, keeping in store.py."""

from __future__ import annotations

import math
import time
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from lab_common.app import create_service_app
from lab_common.faults import require_admin
from receiver import strictjson
from receiver.alertmanager import AlertmanagerReader
from receiver.inbox import CSP, render_inbox
from receiver.metrics import REJECTED, REQUESTS
from receiver.parse import (
    MAX_SUMMARY_CHARS,
    SlackPayload,
    alert_names,
    alert_status,
    slack_group_key,
    slack_shape_error,
    slack_texts,
)
from receiver.runbooks import Runbooks
from receiver.settings import ReceiverSettings
from receiver.smtp import start_smtp
from receiver.store import Bounds, NotificationStore, dedup_key, parse_since


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


class FailRequest(BaseModel):
    seconds: float = Field(ge=0, le=3600, description="Answer 500 on the Slack endpoints for this long.")


class SlackRefused(Exception):
    """A webhook call Slack would refuse: answered 400 with Slack's error word (and the field)."""

    def __init__(self, reason: str, answer: str) -> None:
        super().__init__(answer)
        self.reason = reason
        self.answer = answer


def create_app(settings: ReceiverSettings | None = None) -> FastAPI:
    settings = settings or ReceiverSettings()
    bounds = Bounds(
        max_kept=settings.max_kept,
        max_kept_bytes=settings.max_kept_bytes,
        log_max_bytes=settings.log_max_bytes,
        log_backups=settings.log_backups,
        dedup_seconds=settings.dedup_seconds,
    )
    store = NotificationStore(settings.log, bounds, echo=settings.echo)
    fail = FailWindow(settings.fail_seconds)
    alertmanager = AlertmanagerReader(settings.alertmanager_url, settings.alertmanager_timeout_seconds)
    runbooks = Runbooks(settings.runbooks)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        smtp = await start_smtp(store, settings.host, settings.smtp_port, settings.max_body_bytes)
        app.state.smtp_port = smtp.sockets[0].getsockname()[1]
        try:
            yield
        finally:
            smtp.close()
            await smtp.wait_closed()

    def ready() -> tuple[bool, dict[str, Any]]:
        return True, {
            "smtp_port": getattr(app.state, "smtp_port", None),
            "notifications": len(store.list()),
            **fail.state(),
        }

    app = create_service_app(
        title="Observability Lab alert receiver",
        version="0.2.0",
        settings=settings,
        request_metrics=REQUESTS,
        lifespan=lifespan,
        ready_check=ready,
    )
    app.state.store = store
    app.state.fail = fail
    admin = [Depends(require_admin(settings))]

    async def slack_webhook(request: Request) -> PlainTextResponse:
        if fail.remaining() > 0:
            fail.rejected += 1
            REJECTED.labels("fault_injected").inc()
            return PlainTextResponse("receiver_fault_injected", status_code=500)
        raw = await request.body()
        try:
            payload = _slack_payload(raw, request.headers.get("content-type", ""), settings.max_payload_depth)
        except SlackRefused as refused:
            REJECTED.labels(refused.reason).inc()
            return PlainTextResponse(refused.answer, status_code=400)
        texts = slack_texts(payload)
        status = alert_status(*texts)
        group = slack_group_key(payload)
        store.record(
            "slack",
            {
                "path": request.url.path,
                "slack_channel": payload.get("channel"),
                "username": payload.get("username"),
                "summary": "\n".join(texts)[:MAX_SUMMARY_CHARS],
                "alerts": alert_names(*texts),
                "status": status,
                "group_key": group,
                "payload": payload,
            },
            key=dedup_key("slack", group, status, payload),
        )
        # A duplicate is answered ok too: Alertmanager must stop retrying what was already delivered.
        return PlainTextResponse("ok")

    # Slack's real hook URLs look like /services/T000/B000/XXXX; the lab's short form is /slack.
    app.add_api_route("/slack", slack_webhook, methods=["POST"], response_class=PlainTextResponse)

    async def slack_hook(team: str, channel: str, secret: str, request: Request) -> PlainTextResponse:
        return await slack_webhook(request)  # any hook URL lands in the same inbox

    app.add_api_route(
        "/services/{team}/{channel}/{secret}", slack_hook, methods=["POST"], response_class=PlainTextResponse
    )

    @app.get("/notifications")
    def list_notifications(
        channel: Literal["slack", "email"] | None = Query(default=None, description="slack or email"),
        since: str | None = Query(default=None, description="ISO 8601 time or epoch seconds"),
    ) -> JSONResponse:
        try:
            since_epoch = parse_since(since) if since else None
        except ValueError:
            return _field_error("since", "not an ISO 8601 time or epoch seconds")
        items = store.list(channel, since_epoch)
        return JSONResponse({"count": len(items), "notifications": items})

    @app.delete("/notifications", dependencies=admin)
    def clear_notifications() -> dict[str, int]:
        """Empty the inbox. The archive (RECEIVER_LOG) keeps every notification."""
        return {"cleared": store.clear()}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/inbox")

    @app.get("/inbox", response_class=HTMLResponse)
    async def inbox(
        channel: Literal["slack", "email"] | None = Query(default=None, description="slack or email"),
        alert: str | None = Query(default=None, max_length=200, description="only this alert name"),
    ) -> HTMLResponse:
        """The inbox as a page: each Slack message and email as it would look, and Alertmanager's state."""
        items = store.list()
        state = await alertmanager.read()
        html = render_inbox(items, channel, alert, state, settings.page_refresh_seconds)
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP})

    @app.get("/runbooks", response_class=HTMLResponse)
    def runbooks_page() -> HTMLResponse:
        """docs/runbooks.md as HTML; each alert's section has the anchor `#<alert name in lower case>`."""
        return HTMLResponse(runbooks.html())

    @app.post("/admin/fail", dependencies=admin)
    def set_fail(body: FailRequest) -> dict[str, Any]:
        fail.set(body.seconds)
        return fail.state()

    @app.get("/admin/fail")
    def get_fail() -> dict[str, Any]:
        return fail.state()

    _document_slack_body(app, ("/slack", "/services/{team}/{channel}/{secret}"))
    return app


def _document_slack_body(app: FastAPI, paths: tuple[str, ...]) -> None:
    """The webhook reads its body itself (JSON or Slack's form encoding, Slack's 400 words): tell the OpenAPI
    schema what it accepts and answers, so clients and the schema fuzzer know."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base_openapi()
        body = SlackPayload.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(body.pop("$defs", {}))
        components["SlackPayload"] = body
        text = {"text/plain": {"schema": {"type": "string"}}}
        for path in paths:
            operation = schema["paths"][path]["post"]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SlackPayload"}}},
            }
            operation["responses"] = {
                **operation.get("responses", {}),
                "200": {"description": "Stored (or a recent duplicate): `ok`", "content": text},
                "400": {"description": "`invalid_payload: <field>: <why>` or `no_text`", "content": text},
                "413": {"description": "The body is larger than MAX_BODY_BYTES"},
                "500": {"description": "`receiver_fault_injected`: the lab's fail window is open"},
            }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _field_error(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"field": field, "message": message, "type": "value_error"}]}, 422)


def _slack_payload(raw: bytes, content_type: str, max_depth: int) -> dict[str, Any]:
    """The checked JSON object of a webhook call: a JSON body, or a form field `payload=` as Slack accepts."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SlackRefused("invalid_json", "invalid_payload: body is not UTF-8") from exc
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = parse_qs(text).get("payload", [text])[0]
    try:
        payload = strictjson.loads(text)
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
