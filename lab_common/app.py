"""App factory helpers: the parts every service's FastAPI app has in common."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from lab_common.cusum import LatencyCusum, latency_monitor, run_every
from lab_common.docs import add_offline_docs
from lab_common.faults import FaultRegistry, fault_router
from lab_common.metrics import RequestMetrics, RequestMetricsMiddleware, flush_deferred, render_metrics
from lab_common.serve import on_shutdown_signal
from lab_common.settings import LabSettings, ServiceSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


class ManagedService(Protocol):
    """The object behind an app (MLService, RAGService, ReceiverService): started before the first request,
    stopped after the last, and asked by /ready whether it can serve."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> tuple[bool, dict[str, Any]]: ...


def field_error(err: dict[str, Any]) -> dict[str, str]:
    """One entry of our 422 body. A body that is not JSON at all is located at `body` (pydantic puts the
    character offset where the field name goes); the offset goes in the message instead."""
    if err["type"] == "json_invalid":
        offset = err["loc"][-1] if len(err["loc"]) > 1 else None
        reason = (err.get("ctx") or {}).get("error", err["msg"])
        where = f" at character {offset}" if isinstance(offset, int) else ""
        return {"field": "body", "message": f"invalid JSON{where}: {reason}", "type": err["type"]}
    return {
        "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
        "message": err["msg"],
        "type": err["type"],
    }


def validation_reason(exc: RequestValidationError) -> str:
    """A bounded label for an invalid request: the pydantic error type of its first error."""
    errors = exc.errors()
    return str(errors[0].get("type", "invalid")) if errors else "invalid"


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ValidationErrorBody(BaseModel):
    """What every 422 of the lab looks like: one entry per invalid field, named."""

    detail: list[FieldError]


class ErrorBody(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def document_common_responses(app: FastAPI) -> None:
    """Make the OpenAPI schema tell the truth about the answers the shared layers give: our 422 body,
    400 for an unparseable body, 413 for an oversized one, 401/403 on admin routes, 503 when not ready."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (FieldError, ValidationErrorBody, ErrorBody):
            components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                has_body = "requestBody" in operation
                # require_admin reads the X-Admin-Token header, so admin operations carry that parameter.
                is_admin = any(p.get("name") == "x-admin-token" for p in operation.get("parameters", []))
                if "422" in responses or has_body:
                    responses["422"] = {
                        "description": "Invalid input: each invalid field is named",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ValidationErrorBody"}
                            }
                        },
                    }
                if has_body:
                    responses.setdefault("400", _error("The body could not be parsed"))
                    responses.setdefault("413", _error("The body is larger than MAX_BODY_BYTES"))
                if is_admin:
                    responses.setdefault("401", _error("Missing or wrong X-Admin-Token"))
                    responses.setdefault("403", _error("Admin endpoints or fault injection are disabled"))
                if path not in ("/health", "/metrics"):
                    responses.setdefault("503", _error("Not ready, a dependency is unavailable, or a fault"))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _running(service: ManagedService) -> Lifespan:
    """The app's lifespan: the service runs from start-up to shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    return lifespan


@asynccontextmanager
async def _entered(lifespan: Lifespan | None, app: FastAPI) -> AsyncIterator[Any]:
    """The wrapped lifespan's state, or None when there is no lifespan to wrap."""
    if lifespan is None:
        yield None
    else:
        async with lifespan(app) as state:
            yield state


def _releasing_faults(lifespan: Lifespan | None, faults: FaultRegistry) -> Lifespan:
    """The service's lifespan, plus: injected sleeps end on SIGTERM/SIGINT (uvicorn would wait for them
    before shutting down) and when the app stops."""

    @asynccontextmanager
    async def wrapped(app: FastAPI) -> AsyncIterator[Any]:
        try:
            with on_shutdown_signal(faults.release):
                async with _entered(lifespan, app) as state:
                    yield state
        finally:
            faults.release()

    return wrapped


def _watching_latency(
    lifespan: Lifespan | None, settings: ServiceSettings, metrics: RequestMetrics, cusum: LatencyCusum
) -> Lifespan:
    """The service's lifespan, plus the in-service CUSUM of its latency (lab_common/cusum.py), ticking from
    start-up to shutdown."""
    monitor = latency_monitor(
        cusum.gauge, metrics.duration, cusum.routes, settings.cusum_params(), flush_deferred
    )

    @asynccontextmanager
    async def wrapped(app: FastAPI) -> AsyncIterator[Any]:
        task = asyncio.create_task(run_every(monitor, settings.cusum_interval_seconds), name="cusum")
        try:
            async with _entered(lifespan, app) as state:
                yield state
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return wrapped


def create_service_app(
    *,
    title: str,
    version: str,
    settings: LabSettings,
    request_metrics: RequestMetrics,
    service: ManagedService | None = None,
    faults: FaultRegistry | None = None,
    on_invalid_request: Callable[[Request, str], None] | None = None,
    latency_cusum: LatencyCusum | None = None,
) -> FastAPI:
    """A FastAPI app with /health, /ready, /metrics, request metrics, body limit, 422s and fault admin, around
    `service` (its lifecycle and readiness); with `latency_cusum`, the CUSUM of its serving latency."""
    lifespan = _running(service) if service is not None else None
    if latency_cusum is not None and isinstance(settings, ServiceSettings) and settings.cusum_enabled:
        lifespan = _watching_latency(lifespan, settings, request_metrics, latency_cusum)
    ready_check = service.ready if service is not None else None
    if faults is not None:
        lifespan = _releasing_faults(lifespan, faults)
    # /docs and /redoc come from add_offline_docs: FastAPI's own load Swagger UI and ReDoc from a CDN.
    app = FastAPI(title=title, version=version, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if on_invalid_request is not None:
            on_invalid_request(request, validation_reason(exc))
        return JSONResponse({"detail": [field_error(err) for err in exc.errors()]}, status_code=422)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    def ready() -> JSONResponse:
        ok, details = ready_check() if ready_check else (True, {})
        return JSONResponse({"ready": ok, **details}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    # Probes and load balancers often send HEAD; FastAPI routes do not take it unless told to. Kept out of
    # the schema: it documents the GET operations.
    for path, probe in (("/health", health), ("/ready", ready), ("/metrics", metrics)):
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)
    add_offline_docs(app)

    if faults is not None:
        app.include_router(fault_router(faults, settings))
    document_common_responses(app)

    # One layer for request metrics and the body limit: metrics see every response, the 413s included.
    app.add_middleware(
        RequestMetricsMiddleware, metrics=request_metrics, max_body_bytes=settings.max_body_bytes
    )
    return app


def lazy_app(module: str, create: Callable[[], FastAPI]) -> Callable[[str], FastAPI]:
    """A module `__getattr__` that builds `module:app` (what uvicorn imports) on first access and keeps it, so
    importing the module stays cheap: `__getattr__ = lazy_app(__name__, create_app)`."""

    def module_getattr(name: str) -> FastAPI:
        if name != "app":
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        built = create()
        vars(sys.modules[module])["app"] = built  # later look-ups find it without __getattr__
        return built

    return module_getattr
