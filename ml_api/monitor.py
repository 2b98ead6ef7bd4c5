"""Drift monitoring wiring: the request path appends to a window, a background task judges it.

`DriftMonitor.add` is the only call on the request path (O(1), a lock and a deque append). `run` is the
background loop started in the app's lifespan: every `interval` seconds it snapshots the window and runs
`DriftDetector.evaluate` in a worker thread, then publishes gauges and the status served by /drift/status.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ml_api import metrics
from ml_api.data import FEATURES
from ml_api.drift import DriftDetector, DriftResult, DriftWindow

log = logging.getLogger("ml_api.drift")
INSUFFICIENT = "insufficient data"


@dataclass(frozen=True)
class Evaluation:
    result: DriftResult | None
    evaluated_at: str | None  # ISO 8601, UTC
    duration_seconds: float | None
    error: str | None = None


class DriftMonitor:
    def __init__(
        self,
        reference: pd.DataFrame,
        reference_predictions: list[str],
        *,
        window_size: int,
        max_age_seconds: float,
        min_window: int,
        interval_seconds: float,
        alpha: float = 0.005,
    ) -> None:
        self.reference = reference.loc[:, list(FEATURES)]
        self.detector = DriftDetector(
            self.reference,
            reference_predictions=reference_predictions,
            min_window=min_window,
            alpha=alpha,
            columns=list(FEATURES),
        )
        self.window = DriftWindow(FEATURES, max_size=window_size, max_age_seconds=max_age_seconds)
        self.min_window = min_window
        self.interval_seconds = interval_seconds
        self.evaluations = 0
        self._last = Evaluation(None, None, None)
        self._generation = 0  # bumped by reset: a result computed before the reset is discarded
        self._lock = threading.Lock()
        metrics.publish_drift(None, 0)

    def add(self, ticket: Mapping[str, float], prediction: str) -> None:
        self.window.add(ticket, prediction)

    def evaluate_now(self) -> Evaluation:
        """One evaluation (blocking: call it in a thread). Publishes gauges and the status."""
        generation = self._generation
        frame, predictions = self.window.snapshot()
        started = time.perf_counter()
        try:
            result = self.detector.evaluate(frame, predictions)
        except Exception as exc:  # a bad evaluation must not kill the loop; it is counted and logged
            log.exception("drift evaluation failed")
            metrics.DRIFT_EVALUATIONS.labels("error").inc()
            evaluation = Evaluation(self._last.result, _now_iso(), None, f"{type(exc).__name__}: {exc}")
            with self._lock:
                self._last = evaluation
            return evaluation
        duration = time.perf_counter() - started
        metrics.DRIFT_EVALUATION_DURATION.observe(duration)
        metrics.DRIFT_EVALUATIONS.labels("ok" if result.sufficient else "insufficient_data").inc()
        evaluation = Evaluation(result, _now_iso(), duration)
        with self._lock:
            if generation != self._generation:
                return self._last
            self._last = evaluation
            self.evaluations += 1
            metrics.publish_drift(result, len(frame))
        return evaluation

    async def run(self) -> None:
        """The background loop; cancelled by the lifespan at shutdown."""
        while True:
            await asyncio.sleep(self.interval_seconds)
            await asyncio.to_thread(self.evaluate_now)

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self.window.clear()
            self._last = Evaluation(None, None, None)
            metrics.publish_drift(None, 0)

    def status(self) -> dict[str, Any]:
        with self._lock:
            last = self._last
        result = last.result
        judged = result is not None and result.sufficient
        status: dict[str, Any] = {
            "window_size": len(self.window),
            "min_window": self.min_window,
            "max_window": self.window.max_size,
            "interval_seconds": self.interval_seconds,
            "evaluated_window_size": result.window_size if result is not None else None,
            "sufficient": judged,
            "status": "ok" if judged else INSUFFICIENT,
            "features": {},
            "drifted_share": None,
            "dataset_drift": None,
            "prediction_drift": {"score": None, "detected": None},
            "last_evaluated_at": last.evaluated_at,
            "last_duration_seconds": last.duration_seconds,
            "last_error": last.error,
        }
        if result is not None and judged:
            status["features"] = {
                name: {"score": fd.score, "detected": fd.detected, "method": fd.method, "p_value": fd.p_value}
                for name, fd in result.features.items()
            }
            status["drifted_share"] = result.drifted_share
            status["dataset_drift"] = result.dataset_drift
            status["prediction_drift"] = {
                "score": result.prediction_drift_score,
                "detected": result.prediction_drift_detected,
            }
        return status


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
