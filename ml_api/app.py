"""ml_api routes: ticket severity (single, batch), model card, drift status/report/reset, triage.

Run: `uvicorn ml_api.app:app --port 8000` (trains a model first when `ML_MODEL_DIR` holds none).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pandas as pd
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response

from lab_common.app import create_service_app
from lab_common.faults import Fault, FaultRegistry, LatencyParams, RateParams, require_admin
from lab_common.logging import setup_logging
from ml_api import metrics
from ml_api.data import FEATURES
from ml_api.model import LoadedModel
from ml_api.monitor import INSUFFICIENT, DriftMonitor
from ml_api.schemas import (
    BatchRequest,
    BatchResponse,
    PredictionResponse,
    Ticket,
    TriageRequest,
    TriageResponse,
    prediction_body,
)
from ml_api.settings import MLSettings
from ml_api.train import ensure_model
from ml_api.triage import triage_advice

log = logging.getLogger("ml_api")
VERSION = "0.1.0"


class MLState:
    """What the lifespan builds and the routes use."""

    model: LoadedModel | None = None
    monitor: DriftMonitor | None = None
    http: httpx.AsyncClient | None = None


class _JSONBytes(Response):
    """An application/json Response from bytes already encoded, with its two headers built directly
    (Response.__init__ would render, check and append them one by one): the same bytes on the wire."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]


def _json(body: Any, status_code: int = 200) -> Response:
    """orjson: serialising a few floats costs ~2 µs instead of ~12 µs with json.dumps (hot path)."""
    return _JSONBytes(orjson.dumps(body), status_code)


def _not_ready() -> JSONResponse:
    return JSONResponse({"detail": "model not loaded"}, status_code=503)


def create_app(settings: MLSettings | None = None) -> FastAPI:
    settings = settings or MLSettings()
    setup_logging("ml_api", settings.log_level)
    state = MLState()
    faults = FaultRegistry(
        {
            "latency": Fault(
                "every /predict, /predict/batch and /triage waits params.delay_ms", LatencyParams
            ),
            "errors": Fault("params.rate (0-1) of /predict requests answer 503", RateParams),
        },
        max_seconds=settings.max_fault_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = await asyncio.to_thread(ensure_model, settings)
        metrics.publish_model(
            model.version,
            str(model.card["trained_at"]),
            float(model.card["metrics"]["accuracy"]),
            float(model.card["metrics"]["macro_f1"]),
        )
        monitor = DriftMonitor(
            model.reference,
            model.reference_predictions,
            window_size=settings.drift_window_size,
            max_age_seconds=settings.drift_max_age_seconds,
            min_window=settings.drift_min_window,
            interval_seconds=settings.drift_interval_seconds,
            alpha=settings.drift_alpha,
        )
        state.http = httpx.AsyncClient(timeout=settings.triage_rag_timeout_seconds)
        state.model, state.monitor = model, monitor
        task = asyncio.create_task(monitor.run(), name="drift-evaluation")
        log.info("serving model %s (accuracy %.4f)", model.version, model.card["metrics"]["accuracy"])
        # Start-up leaves a large heap (numpy, pandas, scikit-learn) that never dies; freezing it keeps the
        # garbage collector's full passes, triggered by per-request allocations, from rescanning it.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await state.http.aclose()
            state.model = state.monitor = state.http = None

    def ready_check() -> tuple[bool, dict[str, Any]]:
        model = state.model
        return model is not None, {"model_version": model.version if model else None}

    app = create_service_app(
        title="ml_api: ticket severity",
        version=VERSION,
        settings=settings,
        request_metrics=metrics.HTTP,
        lifespan=lifespan,
        ready_check=ready_check,
        faults=faults,
        on_invalid_request=lambda _request, reason: metrics.INVALID_REQUESTS.labels(reason).inc(),
    )
    app.state.ml = state

    def accept(ticket: dict[str, Any]) -> tuple[str, dict[str, float]]:
        """Predict one validated ticket, record its metrics and add it to the drift window."""
        severity, probs = state.model.predict_one(ticket)
        metrics.observe_prediction(ticket, severity, probs[severity])
        state.monitor.add(ticket, severity)
        return severity, probs

    # Handlers return Response objects: FastAPI then skips re-validating and re-encoding the body (the
    # response_model still documents it), which keeps the hot path close to a bare endpoint.
    @app.post("/predict", response_model=PredictionResponse, tags=["model"])
    async def predict(ticket: Ticket) -> Response:
        if state.model is None:
            return _not_ready()
        if faults.get("latency") is not None:
            await faults.maybe_delay()
        if faults.fires("errors"):
            return JSONResponse({"detail": "injected fault: errors"}, status_code=503)
        severity, probs = accept(ticket.__dict__)
        body = prediction_body(severity, probs)
        body["model_version"] = state.model.version
        return _json(body)

    @app.post("/predict/batch", response_model=BatchResponse, tags=["model"])
    async def predict_batch(batch: BatchRequest) -> Response:
        model, monitor = state.model, state.monitor
        if model is None or monitor is None:
            return _not_ready()
        await faults.maybe_delay()
        rows = [t.__dict__ for t in batch.tickets]
        classes, proba = model.predict_batch(pd.DataFrame(rows, columns=list(FEATURES)))
        predictions = []
        for row, severity, p in zip(rows, classes, proba.tolist(), strict=True):
            probs = model.ordered(p)
            metrics.observe_prediction(row, severity, probs[severity])
            monitor.add(row, severity)
            predictions.append(prediction_body(severity, probs))
        return _json({"model_version": model.version, "predictions": predictions})

    @app.get("/model", tags=["model"])
    def model_card() -> Response:
        if state.model is None:
            return _not_ready()
        return JSONResponse(state.model.card)

    @app.get("/drift/status", tags=["drift"])
    def drift_status() -> Response:
        if state.monitor is None:
            return _not_ready()
        return JSONResponse(state.monitor.status())

    @app.post("/drift/reset", tags=["drift"], dependencies=[Depends(require_admin(settings))])
    def drift_reset() -> dict[str, Any]:
        if state.monitor is None:
            return {"reset": False}
        state.monitor.reset()
        return {"reset": True, "window_size": len(state.monitor.window)}

    @app.get("/drift/report", tags=["drift"], response_class=HTMLResponse)
    async def drift_report() -> Response:
        monitor = state.monitor
        if monitor is None:
            return _not_ready()
        html = await asyncio.to_thread(monitor.report_html)
        if html is None:
            return JSONResponse(
                {"detail": f"{INSUFFICIENT}: the window holds {len(monitor.window)} tickets, "
                           f"the report needs {monitor.min_window}"},
                status_code=409,
            )  # fmt: skip
        return HTMLResponse(html)

    @app.post("/triage", response_model=TriageResponse, tags=["triage"])
    async def triage(body: TriageRequest) -> Response:
        started = time.perf_counter()
        if state.model is None or state.http is None:
            return _not_ready()
        await faults.maybe_delay()
        ticket = {f: getattr(body, f) for f in FEATURES}
        severity, probs = accept(ticket)
        advice = await triage_advice(
            state.http,
            settings.rag_url,
            body.text,
            severity,
            probs[severity],
            top_k=settings.triage_top_k,
            timeout=settings.triage_rag_timeout_seconds,
        )
        result = prediction_body(severity, probs)
        result["model_version"] = state.model.version
        result.update(advice)
        metrics.TRIAGE_DURATION.observe(time.perf_counter() - started)
        return _json(result)

    # Starlette tries routes in order until one matches fully: the hot paths go first (stable sort).
    hot = {"/predict", "/predict/batch", "/triage"}
    app.router.routes.sort(key=lambda route: getattr(route, "path", None) not in hot)
    return app


app = create_app()
