"""The ticket-severity service behind the routes: model, drift window, triage client and their lifecycle.

`MLService.start` loads (or trains) the model and starts the drift loop; `stop` undoes it. Request methods
return plain bodies (dicts) and raise `NotReady` or `InjectedError`, which the app turns into 503s.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import pandas as pd

from lab_common.faults import Fault, FaultRegistry, LatencyParams, RateParams
from ml_api import metrics
from ml_api.data import FEATURES
from ml_api.model import LoadedModel
from ml_api.monitor import INSUFFICIENT, DriftMonitor
from ml_api.report import DriftReporter
from ml_api.schemas import BatchRequest, Ticket, TriageRequest, prediction_body
from ml_api.settings import MLSettings
from ml_api.train import ensure_model
from ml_api.triage import triage_advice

log = logging.getLogger("ml_api")

FAULTS = {
    "latency": Fault("every /predict, /predict/batch and /triage waits params.delay_ms", LatencyParams),
    "errors": Fault("params.rate (0-1) of /predict requests answer 503", RateParams),
}


class NotReady(Exception):
    """The model is not loaded yet (start-up) or any more (shutdown): 503."""

    detail = "model not loaded"


class InjectedError(Exception):
    """The `errors` fault chose this request: 503."""

    detail = "injected fault: errors"


class InsufficientWindow(Exception):
    """The drift window is too small for a report: 409."""


class MLService:
    def __init__(self, settings: MLSettings) -> None:
        self.settings = settings
        self.faults = FaultRegistry(dict(FAULTS), max_seconds=settings.max_fault_seconds)
        self.model: LoadedModel | None = None
        self.monitor: DriftMonitor | None = None
        self.reporter: DriftReporter | None = None
        self.http: httpx.AsyncClient | None = None
        self._drift_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
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
        self.reporter = DriftReporter(monitor.reference, monitor.window, min_window=settings.drift_min_window)
        self.http = httpx.AsyncClient(timeout=settings.triage_rag_timeout_seconds)
        self.model, self.monitor = model, monitor
        self._drift_task = asyncio.create_task(monitor.run(), name="drift-evaluation")
        log.info("serving model %s (accuracy %.4f)", model.version, model.card["metrics"]["accuracy"])
        # Start-up leaves a large heap (numpy, pandas, scikit-learn) that never dies; freezing it keeps the
        # garbage collector's full passes, triggered by per-request allocations, from rescanning it.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        if self._drift_task is not None:
            self._drift_task.cancel()
            await asyncio.gather(self._drift_task, return_exceptions=True)
        if self.reporter is not None:
            await self.reporter.close()
        if self.http is not None:
            await self.http.aclose()
        self.model = self.monitor = self.reporter = self.http = None
        self._drift_task = None

    def ready(self) -> tuple[bool, dict[str, Any]]:
        model = self.model
        return model is not None, {"model_version": model.version if model else None}

    # -- predictions ---------------------------------------------------------------------------------------
    def _serving(self) -> tuple[LoadedModel, DriftMonitor]:
        model, monitor = self.model, self.monitor
        if model is None or monitor is None:
            raise NotReady
        return model, monitor

    @staticmethod
    def _accept(
        model: LoadedModel, monitor: DriftMonitor, ticket: Mapping[str, float]
    ) -> tuple[str, dict[str, float]]:
        """Predict one validated ticket, record its metrics and add it to the drift window."""
        severity, probs = model.predict_one(ticket)
        metrics.observe_prediction(ticket, severity, probs[severity])
        monitor.add(ticket, severity)
        return severity, probs

    async def predict(self, ticket: Ticket) -> dict[str, Any]:
        model, monitor = self._serving()
        if self.faults.get("latency") is not None:  # skips a coroutine when no fault is set (hot path)
            await self.faults.maybe_delay()
            model, monitor = self._serving()  # the service may have stopped meanwhile
        if self.faults.fires("errors"):
            raise InjectedError
        severity, probs = self._accept(model, monitor, ticket.__dict__)
        body = prediction_body(severity, probs)
        body["model_version"] = model.version
        return body

    async def predict_batch(self, batch: BatchRequest) -> dict[str, Any]:
        self._serving()
        await self.faults.maybe_delay()
        model, monitor = self._serving()
        rows = [t.__dict__ for t in batch.tickets]
        classes, proba = model.predict_batch(pd.DataFrame(rows, columns=list(FEATURES)))
        predictions = []
        for row, severity, p in zip(rows, classes, proba.tolist(), strict=True):
            probs = model.ordered(p)
            metrics.observe_prediction(row, severity, probs[severity])
            monitor.add(row, severity)
            predictions.append(prediction_body(severity, probs))
        return {"model_version": model.version, "predictions": predictions}

    async def triage(self, request: TriageRequest) -> dict[str, Any]:
        started = time.perf_counter()
        if self.http is None:
            raise NotReady
        self._serving()
        await self.faults.maybe_delay()
        model, monitor = self._serving()
        severity, probs = self._accept(model, monitor, {f: getattr(request, f) for f in FEATURES})
        advice = await triage_advice(
            self.http,
            self.settings.rag_url,
            request.text,
            severity,
            probs[severity],
            top_k=self.settings.triage_top_k,
            timeout=self.settings.triage_rag_timeout_seconds,
        )
        result = prediction_body(severity, probs)
        result["model_version"] = model.version
        result.update(advice)
        metrics.TRIAGE_DURATION.observe(time.perf_counter() - started)
        return result

    # -- model card and drift ------------------------------------------------------------------------------
    def model_card(self) -> dict[str, Any]:
        model, _ = self._serving()
        return model.card

    def drift_status(self) -> dict[str, Any]:
        _, monitor = self._serving()
        return monitor.status()

    def drift_reset(self) -> dict[str, Any]:
        monitor = self.monitor
        if monitor is None:
            return {"reset": False}
        monitor.reset()
        return {"reset": True, "window_size": len(monitor.window)}

    async def drift_report(self) -> str:
        """Raises InsufficientWindow (-> 409) while the window is too small to report on."""
        _, monitor = self._serving()
        reporter = self.reporter
        if reporter is None:
            raise NotReady
        html = await reporter.report()
        if html is None:
            raise InsufficientWindow(
                f"{INSUFFICIENT}: the window holds {len(monitor.window)} tickets, "
                f"the report needs {monitor.min_window}"
            )
        return html
