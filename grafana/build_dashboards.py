"""Dashboards as code: writes grafana/dashboards/{ml-service,llm-quality,pipeline-health}.json.

Run `python grafana/build_dashboards.py` after editing; tests/test_dashboards_static.py checks that the
committed JSON equals this script's output, that every panel queries the `prometheus` datasource by uid, has a
description, and only uses metric names from docs/metrics.md (or Prometheus'/Alertmanager's own).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"
TAG = "observability-lab"
DASHBOARDS = {"ml-service": "ML service", "llm-quality": "LLM quality", "pipeline-health": "Pipeline health"}


@dataclass(frozen=True)
class Threshold:
    """An alert threshold drawn on a panel. `above`: the alert fires above it (else below it)."""

    value: float
    alert: str | None = None  # None: colouring only, no alert behind it
    above: bool = True


# The thresholds of prometheus/rules/alerts.yml (tabled in docs/alerts.md); tests check each value appears in
# its alert's expression. Panels show the same scope as the rule (e.g. ml_api latency = /predict endpoints).
THRESHOLDS = {
    "ml_error_ratio": Threshold(0.05, "MLHighErrorRatio"),
    "ml_latency_p90": Threshold(0.25, "MLHighLatencyP90"),
    "ml_latency_p99": Threshold(1.0, "MLHighLatencyP99"),
    "ml_dataset_drift": Threshold(1, "MLDataDriftDetected"),
    "ml_feature_drift": Threshold(1, "MLFeatureDrift"),
    "ml_prediction_drift": Threshold(0.15, "MLPredictionDrift"),
    "triage_degraded_ratio": Threshold(0.2, "TriageDegraded"),
    "rag_latency_p90": Threshold(2.0, "LLMHighLatency"),
    "llm_groundedness_p50": Threshold(0.5, "LLMGroundednessLow", above=False),
    "llm_hallucination_p90": Threshold(0.5, "LLMHallucinationHigh"),
    "llm_relevance_p50": Threshold(0.3, "LLMRelevanceLow", above=False),
    "llm_embedding_drift": Threshold(0.3, "LLMEmbeddingDrift"),
    "llm_queue_depth": Threshold(50, "LLMEvaluationBacklog"),
    "llm_evaluation_failed_ratio": Threshold(0.2, "LLMEvaluationFailures"),
}
# Probe and admin endpoints are left out of request ratios, as the recording rules do.
NOT_PROBES = 'endpoint!~"/health|/ready|/metrics|/admin/.*"'
ML_SERVING = 'endpoint=~"/predict|/predict/batch"'

FEATURES = {
    "ticket_length": ("ml_feature_ticket_length_characters", "Ticket length", "short"),
    "urgency_keywords": ("ml_feature_urgency_keywords", "Urgency keywords", "short"),
    "business_impact_score": ("ml_feature_business_impact_score", "Business impact score", "short"),
    "customer_tier": ("ml_feature_customer_tier", "Customer tier", "short"),
}


# ---------------------------------------------------------------------------------------------- primitives
def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref, **extra}


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def quantile_expr(metric: str, q: float, by: str = "", where: str = "") -> str:
    """The q-quantile of histogram `metric` over the rate interval, summed by le (and `by`)."""
    group = f"le, {by}" if by else "le"
    sel = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return f"histogram_quantile({q}, sum by ({group}) (rate({sel}[{RI}])))"


def quantiles(
    metric: str, qs: tuple[float, ...] = (0.5, 0.9, 0.99), by: str = "", where: str = ""
) -> list[dict[str, Any]]:
    suffix = f" {{{{{by}}}}}" if by else ""
    return targets(*((quantile_expr(metric, q, by, where), f"p{round(q * 100)}{suffix}") for q in qs))


Thresholds = Threshold | list[Threshold] | None


def as_list(threshold: Thresholds) -> list[Threshold]:
    if threshold is None:
        return []
    return threshold if isinstance(threshold, list) else [threshold]


def thresholds_cfg(threshold: Thresholds) -> dict[str, Any]:
    """Grafana steps: green on the good side; orange then red past each threshold in turn."""
    items = sorted(as_list(threshold), key=lambda t: t.value)
    if not items:
        return {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    if items[0].above:
        colours = ["red"] if len(items) == 1 else ["orange", "red"]
        steps = [{"color": "green", "value": None}]
        steps += [{"color": c, "value": t.value} for c, t in zip(colours, items, strict=False)]
    else:
        steps = [{"color": "red", "value": None}, {"color": "green", "value": items[0].value}]
    return {"mode": "absolute", "steps": steps}


def describe_thresholds(threshold: Thresholds, how: str) -> str:
    named = [t for t in as_list(threshold) if t.alert]
    if not named:
        return ""
    return " " + how + ": " + ", ".join(f"`{t.alert}` alert threshold ({t.value:g})" for t in named) + "."


def timeseries(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    unit: str = "short",
    threshold: Thresholds = None,
    stack: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    w: int = 8,
    h: int = 8,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 25 if stack else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "dashed" if threshold else "off"},
    }
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": custom,
        "color": {"mode": "palette-classic"},
        "thresholds": thresholds_cfg(threshold),
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    description += describe_thresholds(threshold, "Dashed line")
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (w, h),
    }


def heatmap(title: str, description: str, metric: str, unit: str = "short", w: int = 6, h: int = 8) -> dict:
    """A Prometheus histogram over time: one row per bucket, colour = observations per second."""
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [
            target(f"sum by (le) (rate({metric}_bucket[{RI}]))", "{{le}}", format="heatmap", interval="")
        ],
        "fieldConfig": {
            "defaults": {"custom": {"hideFrom": {"legend": False, "tooltip": False, "viz": False}}}
        },
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
                "steps": 64,
            },
            "yAxis": {"axisPlacement": "left", "unit": unit},
            "rowsFrame": {"layout": "auto"},
            "filterValues": {"le": 1e-9},
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
            "legend": {"show": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
        },
        "_size": (w, h),
    }


def stat(
    title: str,
    description: str,
    tgts: list[dict[str, Any]],
    unit: str = "short",
    threshold: Thresholds = None,
    mappings: list[dict[str, Any]] | None = None,
    decimals: int | None = None,
    w: int = 4,
    h: int = 5,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": thresholds_cfg(threshold),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    description += describe_thresholds(threshold, "Turns red at the")
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
        "_size": (w, h),
    }


def table(title: str, description: str, tgts: list[dict[str, Any]], w: int = 12, h: int = 8) -> dict:
    """Instant query results as rows (one per series): for `*_info` gauges and the ALERTS series."""
    for tgt in tgts:
        tgt.update(instant=True, range=False, format="table")
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": tgts,
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "Value": True}}}
        ],
        "_size": (w, h),
    }


def right_axis(series: str, unit: str) -> dict[str, Any]:
    """An override that moves one series (by display name) to a right axis with its own unit."""
    return {
        "matcher": {"id": "byName", "options": series},
        "properties": [{"id": "unit", "value": unit}, {"id": "custom.axisPlacement", "value": "right"}],
    }


def binary_mapping(zero: str, one: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {"0": {"text": zero, "color": "green"}, "1": {"text": one, "color": "red"}},
        }
    ]


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping at 24 columns; rows start a new line. Assigns ids."""
    panels, x, y, line_h = [], 0, 0, 0
    for pid, item in enumerate(items, start=1):
        w, h = item.pop("_size")
        if item["type"] == "row" or x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        item = {"id": pid, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **item}
        panels.append(item)
        x += w
        line_h = max(line_h, h)
        if item["type"] == "row":
            x, y, line_h = 0, y + h, 0
    return panels


def dashboard(uid: str, description: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    links = [
        {
            "type": "link",
            "title": title,
            "url": f"/d/{other}",
            "icon": "dashboard",
            "tooltip": f"Open the {title} dashboard",
            "keepTime": True,
            "includeVars": False,
            "targetBlank": False,
            "asDropdown": False,
            "tags": [],
        }
        for other, title in DASHBOARDS.items()
        if other != uid
    ]
    return {
        "uid": uid,
        "title": DASHBOARDS[uid],
        "description": description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "links": links,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    "datasource": DS,
                    "enable": True,
                    "expr": 'ALERTS{alertstate="firing"}',
                    "iconColor": "red",
                    "name": "Firing alerts",
                    "step": "30s",
                    "titleFormat": "{{alertname}}",
                    "textFormat": "{{severity}} {{service}}",
                    "useValueForTime": False,
                },
            ]
        },
        "templating": {"list": []},
        "panels": layout(items),
    }


# ---------------------------------------------------------------------------------------------- ML service
def ml_service() -> dict[str, Any]:
    t = THRESHOLDS
    drift_mapping = binary_mapping("no drift", "DRIFT")
    items: list[dict[str, Any]] = [
        row("Traffic"),
        timeseries(
            "Requests per second by endpoint and status",
            "Every HTTP request of ml_api by route template and status. Look for 5xx series appearing "
            "(fault `errors`) and 422s (bad input) growing relative to 200s.",
            [
                target(
                    f"sum by (endpoint, status) (rate(ml_http_requests_total[{RI}]))",
                    "{{endpoint}} {{status}}",
                )
            ],
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "5xx error ratio",
            "Share of ml_api requests (probes and admin calls left out) answered with a 5xx status. "
            "Healthy traffic stays at 0; the `errors` fault lifts it to its rate.",
            [
                target(
                    # `or vector(0)`: no 5xx yet is a ratio of 0, not a missing series.
                    f'(sum(rate(ml_http_requests_total{{status=~"5..", {NOT_PROBES}}}[{RI}])) or vector(0)) '
                    f"/ sum(rate(ml_http_requests_total{{{NOT_PROBES}}}[{RI}]))",
                    "5xx share",
                )
            ],
            unit="percentunit",
            threshold=t["ml_error_ratio"],
            minimum=0,
        ),
        timeseries(
            "Prediction latency percentiles",
            "p50/p90/p99 of /predict and /predict/batch (the scope of the latency alerts). The `latency` "
            "fault lifts every percentile by its delay; a lone p99 rise means a few slow requests.",
            quantiles("ml_http_request_duration_seconds", where=ML_SERVING),
            unit="s",
            threshold=[t["ml_latency_p90"], t["ml_latency_p99"]],
        ),
        timeseries(
            "p90 latency by endpoint",
            "Which route is slow: p90 per route template.",
            quantiles("ml_http_request_duration_seconds", (0.9,), by="endpoint"),
            unit="s",
        ),
        timeseries(
            "Invalid requests by reason",
            "Requests rejected with 422, by pydantic error type. A burst usually means a client sends "
            "out-of-range or missing fields; compare with the feature heatmaps.",
            [target(f"sum by (reason) (rate(ml_invalid_requests_total[{RI}]))", "{{reason}}")],
            unit="reqps",
            stack=True,
        ),
        row("Predictions"),
        timeseries(
            "Severity mix",
            "Predictions per second by predicted class. A shift of the mix without a traffic change is "
            "prediction drift: check the drift row below.",
            [target(f"sum by (severity) (rate(ml_predictions_total[{RI}]))", "{{severity}}")],
            unit="reqps",
            stack=True,
        ),
        timeseries(
            "Severity share over the range",
            "Share of each predicted class over the selected time range.",
            [
                target(
                    "sum by (severity) (increase(ml_predictions_total[$__range])) "
                    "/ scalar(sum(increase(ml_predictions_total[$__range])))",
                    "{{severity}}",
                )
            ],
            unit="percentunit",
            minimum=0,
            maximum=1,
        ),
        heatmap(
            "Prediction confidence distribution",
            "Probability of the predicted class over time (darker = more predictions). Drifted inputs push "
            "mass toward low confidence.",
            "ml_prediction_confidence_ratio",
            unit="percentunit",
            w=8,
        ),
        row("Feature distributions (buckets at the reference quantiles: healthy traffic fills them evenly)"),
        *(
            heatmap(
                f"{label} distribution",
                f"Live distribution of the `{name}` input feature. Buckets sit at the training reference "
                "quantiles, so healthy traffic spreads evenly over the rows; drift piles it into the top or "
                "bottom rows.",
                metric,
                unit=unit,
            )
            for name, (metric, label, unit) in FEATURES.items()
        ),
        row("Drift (Evidently, recomputed in the background over the recent window)"),
        timeseries(
            "Drift score per feature",
            "Evidently's per-feature drift statistic. Absent while the window is too small. The feature "
            "whose score moves first is the one that drifted.",
            [target("max by (feature) (ml_feature_drift_score)", "{{feature}}")],
        ),
        timeseries(
            "Drifted features share",
            "Share of input features Evidently flags as drifted. Evidently declares dataset drift (and "
            "`MLDataDriftDetected` fires) when at least half of them drifted: the dashed line.",
            [target("max(ml_drifted_features_ratio)", "drifted share")],
            unit="percentunit",
            threshold=Threshold(0.5),
            minimum=0,
            maximum=1,
        ),
        stat(
            "Dataset drift",
            "1 (red) when Evidently declares the dataset as a whole drifted in the current window.",
            [target("max(ml_dataset_drift_detected)", "dataset drift")],
            mappings=drift_mapping,
            threshold=t["ml_dataset_drift"],
        ),
        stat(
            "Drifted features",
            "How many features are flagged as drifted right now (each gauge is 1 when drifted).",
            [target("sum(ml_feature_drift_detected)", "drifted features")],
            threshold=t["ml_feature_drift"],
            decimals=0,
        ),
        timeseries(
            "Prediction drift score",
            "Drift of the predicted-class distribution against the reference. It can move without input "
            "drift when the model meets a new mix of tickets.",
            [target("max(ml_prediction_drift_score)", "prediction drift")],
            threshold=t["ml_prediction_drift"],
        ),
        timeseries(
            "Drift window",
            "Tickets in the drift window, and whether it holds enough to judge drift (1 = sufficient). "
            "Drift scores are absent while it is 0.",
            targets(
                ("max(ml_drift_window_samples)", "samples"),
                ("max(ml_drift_window_sufficient)", "sufficient"),
            ),
        ),
        timeseries(
            "Drift evaluations",
            "Background drift computations per second by result, and the p90 of their duration (right "
            "axis). `error` should stay at 0; `insufficient_data` is normal right after start.",
            [
                target(f"sum by (result) (rate(ml_drift_evaluations_total[{RI}]))", "{{result}}", "A"),
                target(
                    quantile_expr("ml_drift_evaluation_duration_seconds", 0.9),
                    "p90 duration",
                    "B",
                ),
            ],
            unit="ops",
            overrides=[right_axis("p90 duration", "s")],
        ),
        row("Model"),
        stat(
            "Held-out accuracy",
            "Accuracy measured by training on the held-out split. It changes only when a new model loads.",
            [target("max(ml_model_accuracy_ratio)", "accuracy")],
            unit="percentunit",
            decimals=1,
        ),
        stat(
            "Held-out macro-F1",
            "Macro-F1 on the held-out split: the class-balanced quality of the loaded model.",
            [target("max(ml_model_macro_f1_ratio)", "macro-F1")],
            unit="percentunit",
            decimals=1,
        ),
        table(
            "Loaded model",
            "Version and training time of the model each ml_api instance serves.",
            [target("ml_model_info", "{{version}}")],
            w=16,
            h=5,
        ),
    ]
    return dashboard(
        "ml-service",
        "ml_api: traffic, latency, predictions, input feature distributions, Evidently drift, model quality.",
        items,
    )


# ---------------------------------------------------------------------------------------------- LLM quality
def llm_quality() -> dict[str, Any]:
    t = THRESHOLDS
    items: list[dict[str, Any]] = [
        row("Traffic"),
        timeseries(
            "Requests per second by endpoint and status",
            "Every HTTP request of rag_api by route template and status.",
            [
                target(
                    f"sum by (endpoint, status) (rate(rag_http_requests_total[{RI}]))",
                    "{{endpoint}} {{status}}",
                )
            ],
            unit="reqps",
            stack=True,
            w=6,
        ),
        timeseries(
            "Chat outcomes",
            "/chat calls by outcome. `unavailable` means the vector store or backend could not answer.",
            [target(f"sum by (status) (rate(rag_chat_requests_total[{RI}]))", "{{status}}")],
            unit="reqps",
            stack=True,
            w=6,
        ),
        timeseries(
            "5xx error ratio",
            "Share of rag_api requests (probes and admin calls left out) answered with a 5xx status.",
            [
                target(
                    # `or vector(0)`: no 5xx yet is a ratio of 0, not a missing series.
                    f'(sum(rate(rag_http_requests_total{{status=~"5..", {NOT_PROBES}}}[{RI}])) or vector(0)) '
                    f"/ sum(rate(rag_http_requests_total{{{NOT_PROBES}}}[{RI}]))",
                    "5xx share",
                )
            ],
            unit="percentunit",
            minimum=0,
            w=6,
        ),
        timeseries(
            "p90 latency by endpoint",
            "Which rag_api route is slow: p90 per route template (/chat dominates; /health should be flat).",
            quantiles("rag_http_request_duration_seconds", (0.9,), by="endpoint"),
            unit="s",
            w=6,
        ),
        row("Latency breakdown"),
        timeseries(
            "End-to-end /chat latency",
            "p50/p90/p99 of /chat from request to answer (retrieval + generation; scoring runs after), "
            "and the p90 of the HTTP /chat latency that the latency alert watches.",
            [
                *quantiles("rag_chat_duration_seconds"),
                target(
                    quantile_expr("rag_http_request_duration_seconds", 0.9, where='endpoint="/chat"'),
                    "HTTP /chat p90",
                    "D",
                ),
            ],
            unit="s",
            threshold=t["rag_latency_p90"],
            w=6,
        ),
        timeseries(
            "Retrieval latency",
            "Embedding the question and searching the vector store. Rises with a remote Chroma or a "
            "larger knowledge base.",
            quantiles("rag_retrieval_duration_seconds"),
            unit="s",
            w=6,
        ),
        timeseries(
            "Generation latency by backend",
            "Answer generation per backend. The `latency` fault adds its delay here.",
            quantiles("llm_generation_duration_seconds", by="backend"),
            unit="s",
            w=6,
        ),
        timeseries(
            "Evaluation latency by provider",
            "Scoring one answer (groundedness and relevance feedback). Slow scoring grows the queue.",
            quantiles("llm_evaluation_duration_seconds", by="provider"),
            unit="s",
            w=6,
        ),
        row("Answer quality (TruLens feedback, 0-1)"),
        timeseries(
            "Groundedness",
            "How much of each answer the retrieved context supports: p10/p50/p90 and the mean. The "
            "`hallucination` fault drags the low percentiles down first.",
            [
                *quantiles("llm_groundedness_score", (0.1, 0.5, 0.9)),
                target(
                    f"sum(rate(llm_groundedness_score_sum[{RI}])) "
                    f"/ sum(rate(llm_groundedness_score_count[{RI}]))",
                    "mean",
                    "D",
                ),
            ],
            unit="percentunit",
            threshold=t["llm_groundedness_p50"],
            minimum=0,
            maximum=1,
            w=6,
        ),
        timeseries(
            "Hallucination",
            "1 - groundedness: p50/p90/p99. Higher is worse; the alert watches p90.",
            quantiles("llm_hallucination_score"),
            unit="percentunit",
            threshold=t["llm_hallucination_p90"],
            minimum=0,
            maximum=1,
            w=6,
        ),
        timeseries(
            "Context relevance",
            "How relevant the retrieved chunks are to the question (p10/p50/p90). Off-domain questions "
            "lower it; so does a broken index.",
            quantiles("llm_context_relevance_score", (0.1, 0.5, 0.9)),
            unit="percentunit",
            threshold=t["llm_relevance_p50"],
            minimum=0,
            maximum=1,
            w=6,
        ),
        timeseries(
            "Answer relevance",
            "How well the answer addresses the question (p10/p50/p90).",
            quantiles("llm_answer_relevance_score", (0.1, 0.5, 0.9)),
            unit="percentunit",
            threshold=t["llm_relevance_p50"],
            minimum=0,
            maximum=1,
            w=6,
        ),
        heatmap(
            "Groundedness distribution",
            "Groundedness of each scored answer over time; a second band near 0 is hallucinated answers.",
            "llm_groundedness_score",
            unit="percentunit",
            w=12,
        ),
        row("Retrieval and embedding drift"),
        timeseries(
            "Retrieval distance",
            "Cosine distance of retrieved chunks (0 = identical, 2 = opposite): p50/p90. Rising distance "
            "means questions the knowledge base does not cover.",
            quantiles("rag_retrieval_distance", (0.5, 0.9)),
            w=8,
        ),
        timeseries(
            "Query embedding drift",
            "Drift of recent question embeddings against the in-domain reference questions.",
            [target("max(llm_embedding_drift_score)", "embedding drift")],
            threshold=t["llm_embedding_drift"],
            w=8,
        ),
        stat(
            "Knowledge base chunks",
            "Chunks in the vector store collection. 0 means the knowledge base was not ingested.",
            [target("max(rag_knowledge_base_chunks)", "chunks")],
            threshold=Threshold(1, above=False),
            decimals=0,
        ),
        table(
            "Backend",
            "Which generation backend, model and evaluator each rag_api instance uses.",
            [target("llm_backend_info", "{{backend}}")],
            w=4,
            h=8,
        ),
        row("Tokens and cost"),
        timeseries(
            "Tokens per second by model and type",
            "Prompt and completion tokens per second. Prompt tokens grow with retrieved context size.",
            [target(f"sum by (model, type) (rate(llm_tokens_total[{RI}]))", "{{model}} {{type}}")],
            unit="short",
            stack=True,
            w=8,
        ),
        timeseries(
            "Cost per hour by model",
            "Estimated spend rate from the price table in settings (0 for the offline backend).",
            [target(f"sum by (model) (rate(llm_cost_dollars_total[{RI}])) * 3600", "{{model}}")],
            unit="currencyUSD",
            stack=True,
            w=8,
        ),
        stat(
            "Cost over the range",
            "Estimated dollars spent in the selected time range.",
            [target("sum(increase(llm_cost_dollars_total[$__range]))", "cost")],
            unit="currencyUSD",
            decimals=4,
            w=8,
        ),
        row("Evaluation pipeline"),
        timeseries(
            "Evaluation queue depth",
            "Answers waiting to be scored. A steady climb means scoring is slower than traffic; when the "
            "queue is full, answers are dropped unscored.",
            [target("max(llm_evaluation_queue_depth)", "queued")],
            threshold=t["llm_queue_depth"],
            minimum=0,
            w=6,
        ),
        timeseries(
            "Evaluations by result",
            "Scored answers per second: `ok`, `failed` (the evaluator raised, e.g. the "
            "`evaluation_failure` fault) and `dropped` (queue full).",
            [target(f"sum by (result) (rate(llm_evaluations_total[{RI}]))", "{{result}}")],
            unit="reqps",
            stack=True,
            w=6,
        ),
        timeseries(
            "Evaluation failure ratio",
            "Share of evaluations that failed. The quality panels above only describe the answers that "
            "could be scored, so a high failure ratio makes them less trustworthy.",
            [
                target(
                    f'sum(rate(llm_evaluations_total{{result="failed"}}[{RI}])) '
                    f"/ sum(rate(llm_evaluations_total[{RI}]))",
                    "failed share",
                )
            ],
            unit="percentunit",
            threshold=t["llm_evaluation_failed_ratio"],
            minimum=0,
            w=6,
        ),
        timeseries(
            "Generation errors by reason",
            "Failed generation calls: timeouts, HTTP errors, malformed replies and fallbacks to the offline "
            "backend.",
            [target(f"sum by (reason) (rate(llm_generation_errors_total[{RI}]))", "{{reason}}")],
            unit="reqps",
            stack=True,
            w=6,
        ),
    ]
    return dashboard(
        "llm-quality",
        "rag_api: traffic, latency breakdown, TruLens answer quality, retrieval, embedding drift, tokens and "
        "cost.",
        items,
    )


# ------------------------------------------------------------------------------------------ pipeline health
def pipeline_health() -> dict[str, Any]:
    t = THRESHOLDS
    up_mapping = [
        {
            "type": "value",
            "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}},
        }
    ]
    items: list[dict[str, Any]] = [
        row("Triage (ml_api /triage calls rag_api)"),
        timeseries(
            "Triage latency",
            "End-to-end /triage p50/p90/p99, and the p90 of the RAG call inside it. When the RAG call "
            "times out, triage answers degraded at about the timeout.",
            [
                *quantiles("triage_request_duration_seconds"),
                target(
                    quantile_expr("triage_rag_call_duration_seconds", 0.9),
                    "RAG call p90",
                    "D",
                ),
            ],
            unit="s",
        ),
        timeseries(
            "Triage degraded ratio",
            "Share of /triage calls that fell back to the ML prediction only (RAG slow, down or failing).",
            [
                target(
                    f'sum(rate(triage_requests_total{{outcome="degraded"}}[{RI}])) '
                    f"/ sum(rate(triage_requests_total[{RI}]))",
                    "degraded share",
                )
            ],
            unit="percentunit",
            threshold=t["triage_degraded_ratio"],
            minimum=0,
        ),
        timeseries(
            "Triage degraded by reason",
            "Why triage fell back: `timeout` (rag_api slow), `unavailable` (down), `error` (it failed).",
            [target(f"sum by (reason) (rate(triage_degraded_total[{RI}]))", "{{reason}}")],
            unit="reqps",
            stack=True,
        ),
        row("Scrape targets and alerts"),
        stat(
            "Targets up",
            "Every scrape target Prometheus knows: UP (green) or DOWN (red). A DOWN target means its "
            "metrics and the alerts built on them are blind; `TargetDown` fires after 30 s.",
            [target("up", "{{job}} {{instance}}")],
            mappings=up_mapping,
            threshold=Threshold(1, above=False),
            w=12,
            h=6,
        ),
        stat(
            "Firing alerts",
            "How many alerts fire now (pending ones are not counted).",
            [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")],
            threshold=Threshold(1),
            decimals=0,
            w=4,
            h=6,
        ),
        table(
            "Firing and pending alerts",
            "Each alert series with its state and labels. Pending alerts wait out their `for:` duration.",
            [target("ALERTS", "{{alertname}}")],
            w=8,
            h=6,
        ),
        timeseries(
            "Firing alerts by name",
            "Firing alert series over time, by alert name and severity.",
            [
                target(
                    'count by (alertname, severity) (ALERTS{alertstate="firing"})',
                    "{{alertname}} ({{severity}})",
                )
            ],
            stack=True,
            w=12,
        ),
        timeseries(
            "Rule evaluation failures",
            "Failed recording/alerting rule evaluations per second by rule group. Should stay at 0: a "
            "failing rule cannot fire (`PrometheusRuleEvaluationFailures`).",
            [
                target(
                    f"sum by (rule_group) (rate(prometheus_rule_evaluation_failures_total[{RI}]))",
                    "{{rule_group}}",
                )
            ],
            unit="ops",
            w=12,
        ),
        row("Alertmanager notifications"),
        timeseries(
            "Notifications sent by integration",
            "Notification attempts per second by integration (slack, email). A step here should match a "
            "message in the alert receiver or Slack.",
            [
                target(
                    f"sum by (integration) (rate(alertmanager_notifications_total[{RI}]))", "{{integration}}"
                )
            ],
            unit="ops",
            w=12,
        ),
        timeseries(
            "Notifications failed by integration",
            "Failed notification attempts (Alertmanager retries them). Non-zero means a webhook answers "
            "errors or the SMTP smarthost refuses mail; `AlertmanagerNotificationsFailing` fires.",
            [
                target(
                    f"sum by (integration) (rate(alertmanager_notifications_failed_total[{RI}]))",
                    "{{integration}}",
                )
            ],
            unit="ops",
            w=12,
        ),
    ]
    return dashboard(
        "pipeline-health",
        "The monitoring pipeline itself: triage between the services, scrape targets, alerts, notifications.",
        items,
    )


def build() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model."""
    return {"ml-service": ml_service(), "llm-quality": llm_quality(), "pipeline-health": pipeline_health()}


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=False) + "\n"


def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for uid, model in build().items():
        path = OUT_DIR / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        print(f"wrote {path.relative_to(OUT_DIR.parent.parent)} ({len(model['panels'])} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
