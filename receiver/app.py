"""HTTP side: the Slack incoming-webhook protocol, the notification list, the inbox page, the runbooks,
health and a failure knob. Routes stay thin: the work is in ReceiverService (service.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from lab_common.app import create_service_app
from lab_common.endpoints import RECEIVER_INBOX_PATH
from lab_common.faults import require_admin
from receiver.inbox import CSP
from receiver.metrics import REQUESTS
from receiver.parse import SlackPayload
from receiver.service import ReceiverService
from receiver.settings import ReceiverSettings
from receiver.store import parse_since

SLACK_PATHS = ("/slack", "/services/{team}/{channel}/{secret}")
Channel = Literal["slack", "email"]


class FailRequest(BaseModel):
    seconds: float = Field(ge=0, le=3600, description="Answer 500 on the Slack endpoints for this long.")


def create_app(settings: ReceiverSettings | None = None) -> FastAPI:
    service = ReceiverService(settings or ReceiverSettings())
    app = create_service_app(
        title="Observability Lab alert receiver",
        version="0.2.0",
        settings=service.settings,
        request_metrics=REQUESTS,
        service=service,
    )
    app.state.service = service
    _slack_routes(app, service)
    _inbox_routes(app, service)
    _admin_routes(app, service)
    _document_slack_body(app, SLACK_PATHS)
    return app


def _slack_routes(app: FastAPI, service: ReceiverService) -> None:
    async def slack_webhook(request: Request) -> PlainTextResponse:
        raw = await request.body()
        status, answer = service.slack(raw, request.headers.get("content-type", ""), request.url.path)
        return PlainTextResponse(answer, status_code=status)

    async def slack_hook(team: str, channel: str, secret: str, request: Request) -> PlainTextResponse:
        return await slack_webhook(request)  # any hook URL lands in the same inbox

    # Slack's real hook URLs look like /services/T000/B000/XXXX; the lab's short form is /slack.
    app.add_api_route(SLACK_PATHS[0], slack_webhook, methods=["POST"], response_class=PlainTextResponse)
    app.add_api_route(SLACK_PATHS[1], slack_hook, methods=["POST"], response_class=PlainTextResponse)


def _inbox_routes(app: FastAPI, service: ReceiverService) -> None:
    @app.get("/notifications")
    def list_notifications(
        channel: Channel | None = Query(default=None, description="slack or email"),
        since: str | None = Query(default=None, description="ISO 8601 time or epoch seconds"),
    ) -> JSONResponse:
        try:
            since_epoch = parse_since(since) if since else None
        except ValueError:
            return _field_error("since", "not an ISO 8601 time or epoch seconds")
        items = service.store.list(channel, since_epoch)
        return JSONResponse({"count": len(items), "notifications": items})

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(RECEIVER_INBOX_PATH)

    @app.get(RECEIVER_INBOX_PATH, response_class=HTMLResponse)
    async def inbox(
        channel: Channel | None = Query(default=None, description="slack or email"),
        alert: str | None = Query(default=None, max_length=200, description="only this alert name"),
    ) -> HTMLResponse:
        """The inbox as a page: each Slack message and email as it would look, and Alertmanager's state."""
        html = await service.inbox_page(channel, alert)
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP})

    @app.get("/runbooks", response_class=HTMLResponse)
    def runbooks_page() -> HTMLResponse:
        """docs/runbooks.md as HTML; each alert's section has the anchor `#<alert name in lower case>`."""
        return HTMLResponse(service.runbooks.html())


def _admin_routes(app: FastAPI, service: ReceiverService) -> None:
    admin = [Depends(require_admin(service.settings))]

    @app.delete("/notifications", dependencies=admin)
    def clear_notifications() -> dict[str, int]:
        """Empty the inbox. The archive (RECEIVER_LOG) keeps every notification."""
        return {"cleared": service.store.clear()}

    @app.post("/admin/fail", dependencies=admin)
    def set_fail(body: FailRequest) -> dict[str, Any]:
        service.fail.set(body.seconds)
        return service.fail.state()

    @app.get("/admin/fail")
    def get_fail() -> dict[str, Any]:
        return service.fail.state()


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
