"""Every Prometheus metric of ml_api (names and labels: docs/metrics.md, sections ml_api and triage).

Metrics are module-level objects: created once per process, however many apps the tests build.

Gauges set `multiprocess_mode` because the lab may run several uvicorn workers with PROMETHEUS_MULTIPROC_DIR:
model gauges are identical in every worker ("livemax"); drift gauges report the most recent evaluation of a
live worker ("livemostrecent").

Drift gauges are absent while the window is too small to judge: they are set to NaN, and `DriftGauge` drops
NaN samples from its exposition. (prometheus_client cannot remove series in multiprocess mode, where the
aggregated files are read directly; there the placeholder shows as NaN, which PromQL comparisons treat as
false and Grafana draws as a gap.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import Final

import numpy as np
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from lab_common.cusum import LatencyCusum, cusum_gauge
from lab_common.metrics import (
    LATENCY_BUCKETS,
    SCORE_BUCKETS,
    DeferredHistograms,
    multiprocess_dir,
    request_metrics,
)
from ml_api.data import FEATURE_RANGES, FEATURES, SEVERITIES, generate_features
from ml_api.drift import DriftResult

HTTP = request_metrics("ml")
# In-service CUSUM of /predict's median latency per interval (lab_common/cusum.py): LatencyCusumAnomaly.
LATENCY_CUSUM = LatencyCusum(cusum_gauge("ml"), (("/predict", "POST"),))

# --- feature histograms: buckets at quantiles of the reference distribution -----------------------------
# The reference is the generator's distribution; a fixed seed makes the edges identical in every process
# (they must be: workers' histograms are summed bucket by bucket).
_BUCKET_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
_BUCKET_SAMPLE_SEED = 20240601


def reference_buckets(feature: str, sample_size: int = 20_000) -> tuple[float, ...]:
    """Quantile edges of the generator's distribution, a few edges above them, the valid range's ends."""
    sample = generate_features(sample_size, np.random.default_rng(_BUCKET_SAMPLE_SEED))[feature]
    rng = FEATURE_RANGES[feature]
    quantiles = np.quantile(sample.to_numpy(float), _BUCKET_QUANTILES, method="inverted_cdf")
    edges = {float(v) for v in quantiles}
    # beyond the reference (2x and 4x its 99th percentile, up to the valid maximum): a shift out of the
    # reference range shows as a shape, not as one overflow bucket
    top = float(quantiles[-1])
    edges |= {min(top * k, float(rng.maximum)) for k in (2, 4)}
    edges |= {float(rng.minimum), float(rng.maximum)}
    if rng.kind is float:
        edges = {round(e, 2) for e in edges}
    return tuple(sorted(edges))


FEATURE_METRIC_NAMES = {
    "ticket_length": "ml_feature_ticket_length_characters",
    "urgency_keywords": "ml_feature_urgency_keywords",
    "business_impact": "ml_feature_business_impact_score",
    "customer_tier": "ml_feature_customer_tier",
}
FEATURE_HISTOGRAMS: dict[str, Histogram] = {
    f: Histogram(
        FEATURE_METRIC_NAMES[f],
        f"Input feature {f} of accepted tickets; buckets at reference quantiles.",
        buckets=reference_buckets(f),
    )
    for f in FEATURES
}

# --- predictions ------------------------------------------------------------------------------------------
PREDICTIONS = Counter("ml_predictions", "Predictions by predicted severity class.", ["severity"])
PREDICTIONS_BY_CLASS = {s: PREDICTIONS.labels(s) for s in SEVERITIES}  # pre-created: 0 before traffic
CONFIDENCE = Histogram(
    "ml_prediction_confidence_ratio", "Probability of the predicted class.", buckets=SCORE_BUCKETS
)
INVALID_REQUESTS = Counter("ml_invalid_requests", "Rejected requests by pydantic error type.", ["reason"])


# --- drift ------------------------------------------------------------------------------------------------
class DriftGauge(Gauge):
    """A gauge whose NaN samples are left out of the exposition: NaN means "no value" (not judged)."""

    def collect(self) -> Iterable[Metric]:
        metrics = list(super().collect())
        for metric in metrics:
            metric.samples = [s for s in metric.samples if not math.isnan(s.value)]
        return metrics


_RECENT: Final = "livemostrecent"
FEATURE_DRIFT_SCORE = DriftGauge(
    "ml_feature_drift_score",
    "Per-feature drift statistic (KS distance, 0-1); absent while the window is too small.",
    ["feature"],
    multiprocess_mode=_RECENT,
)
FEATURE_DRIFT_DETECTED = DriftGauge(
    "ml_feature_drift_detected", "1 when that feature drifted.", ["feature"], multiprocess_mode=_RECENT
)
DRIFTED_FEATURES_RATIO = DriftGauge(
    "ml_drifted_features_ratio", "Share of features that drifted.", multiprocess_mode=_RECENT
)
DATASET_DRIFT_DETECTED = DriftGauge(
    "ml_dataset_drift_detected", "1 when the dataset as a whole drifted.", multiprocess_mode=_RECENT
)
PREDICTION_DRIFT_SCORE = DriftGauge(
    "ml_prediction_drift_score",
    "Drift of the predicted-class distribution (Jensen-Shannon distance, 0-1).",
    multiprocess_mode=_RECENT,
)
DRIFT_WINDOW_SAMPLES = Gauge(
    "ml_drift_window_samples", "Tickets in the drift window.", multiprocess_mode=_RECENT
)
DRIFT_WINDOW_SUFFICIENT = Gauge(
    "ml_drift_window_sufficient",
    "1 when the window holds enough tickets to judge drift.",
    multiprocess_mode=_RECENT,
)
DRIFT_EVALUATIONS = Counter("ml_drift_evaluations", "Background drift computations by result.", ["result"])
for _result in ("ok", "insufficient_data", "error"):
    DRIFT_EVALUATIONS.labels(_result)
_DRIFT_REPORTS = Counter(
    "ml_drift_reports", "GET /drift/report answers: built, cached, insufficient_data or error.", ["outcome"]
)
DRIFT_REPORTS = {o: _DRIFT_REPORTS.labels(o) for o in ("built", "cached", "insufficient_data", "error")}
DRIFT_EVALUATION_DURATION = Histogram(
    "ml_drift_evaluation_duration_seconds", "Cost of one drift computation.", buckets=LATENCY_BUCKETS
)

# --- model ------------------------------------------------------------------------------------------------
MODEL_INFO = Gauge(
    "ml_model_info", "The served model; always 1.", ["version", "trained_at"], multiprocess_mode="livemax"
)
MODEL_ACCURACY = Gauge(
    "ml_model_accuracy_ratio", "Held-out accuracy measured by training.", multiprocess_mode="livemax"
)
MODEL_MACRO_F1 = Gauge(
    "ml_model_macro_f1_ratio", "Held-out macro-F1 measured by training.", multiprocess_mode="livemax"
)

# --- triage -----------------------------------------------------------------------------------------------
TRIAGE_REQUESTS = Counter("triage_requests", "/triage calls by outcome.", ["outcome"])
TRIAGE_BY_OUTCOME = {o: TRIAGE_REQUESTS.labels(o) for o in ("ok", "degraded")}
TRIAGE_DEGRADED = Counter("triage_degraded", "Why /triage fell back to the ML part only.", ["reason"])
TRIAGE_DEGRADED_BY_REASON = {r: TRIAGE_DEGRADED.labels(r) for r in ("timeout", "unavailable", "error")}
TRIAGE_DURATION = Histogram(
    "triage_request_duration_seconds", "End-to-end /triage latency.", buckets=LATENCY_BUCKETS
)
TRIAGE_RAG_DURATION = Histogram(
    "triage_rag_call_duration_seconds", "The rag_api call inside /triage.", buckets=LATENCY_BUCKETS
)

# Unset drift gauges start absent.
for _g in (DRIFTED_FEATURES_RATIO, DATASET_DRIFT_DETECTED, PREDICTION_DRIFT_SCORE):
    _g.set(math.nan)


# --- updates (kept here so the app and the drift loop never touch metric objects directly) --------------
# Five observations per ticket: deferred to the scrape (and a background flush), one append on the hot path.
_feature_values = itemgetter(*FEATURES)
_deferred_inputs = DeferredHistograms(
    [*(FEATURE_HISTOGRAMS[f] for f in FEATURES), CONFIDENCE],
    dropped=HTTP.dropped_observations.labels("prediction_inputs"),
)


def observe_prediction(ticket: Mapping[str, float], severity: str, confidence: float) -> None:
    """Per accepted ticket: its features, its class and its confidence (cheap: on the request path)."""
    _deferred_inputs.observe((*_feature_values(ticket), confidence))
    PREDICTIONS_BY_CLASS[severity].inc()


def publish_model(version: str, trained_at: str, accuracy: float, macro_f1: float) -> None:
    if not multiprocess_dir():  # removal is unsupported (and unneeded: one model per worker) there
        MODEL_INFO.clear()
    MODEL_INFO.labels(version, trained_at).set(1)
    MODEL_ACCURACY.set(accuracy)
    MODEL_MACRO_F1.set(macro_f1)


def publish_drift(result: DriftResult | None, window_samples: int) -> None:
    """Drift gauges from the latest evaluation; NaN (absent) when it could not judge."""
    DRIFT_WINDOW_SAMPLES.set(window_samples)
    judged = result if result is not None and result.sufficient else None
    DRIFT_WINDOW_SUFFICIENT.set(1 if judged else 0)
    for feature in FEATURES:
        fd = judged.features.get(feature) if judged else None
        FEATURE_DRIFT_SCORE.labels(feature).set(fd.score if fd is not None else math.nan)
        FEATURE_DRIFT_DETECTED.labels(feature).set(float(fd.detected) if fd is not None else math.nan)
    DRIFTED_FEATURES_RATIO.set(_or_nan(judged.drifted_share if judged else None))
    DATASET_DRIFT_DETECTED.set(_or_nan(judged.dataset_drift if judged else None))
    PREDICTION_DRIFT_SCORE.set(_or_nan(judged.prediction_drift_score if judged else None))


def _or_nan(value: float | bool | None) -> float:
    return math.nan if value is None else float(value)
