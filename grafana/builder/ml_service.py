"""The ML service dashboard (uid ml-service): ml_api traffic, predictions, input features, drift, model.
Words: texts/ml-service.md."""

from __future__ import annotations

import inspect

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from ml_api.drift import DriftDetector

from .board import Board
from .panels import (
    RI,
    heatmap,
    quantile_expr,
    quantiles,
    rate_by,
    right_axis,
    stat,
    table,
    target,
    targets,
    value_texts,
)
from .panels import timeseries as ts
from .shared import ML_API, error_ratio, p90_by_endpoint, requests_by_status
from .thresholds import Line

ML_SERVING = 'endpoint=~"/predict|/predict/batch"'
FEATURES = {
    "ticket_length": ("ml_feature_ticket_length_characters", "Ticket length"),
    "urgency_keywords": ("ml_feature_urgency_keywords", "Urgency keywords"),
    "business_impact_score": ("ml_feature_business_impact_score", "Business impact score"),
    "customer_tier": ("ml_feature_customer_tier", "Customer tier"),
}
# ml_api declares dataset drift at this share of drifted features; the panel draws the same line.
DRIFT_SHARE = inspect.signature(DriftDetector).parameters["drift_share"].default

PanelList = list[Builder[dm.Panel]]
BOARD = Board("ml-service")


@BOARD.row("Traffic")
def traffic() -> PanelList:
    serving = quantiles("ml_http_request_duration_seconds", where=ML_SERVING)
    invalid = [rate_by("ml_invalid_requests_total", "reason")]
    return [
        requests_by_status(ML_API),
        error_ratio(ML_API),
        ts("Prediction latency percentiles", serving, unit="s"),
        p90_by_endpoint(ML_API),
        ts("Invalid requests by reason", invalid, unit="reqps", stack=True),
    ]


@BOARD.row("Predictions")
def predictions() -> PanelList:
    in_range = "sum by (severity) (increase(ml_predictions_total[$__range]))"
    share = target(f"{in_range} / scalar(sum(increase(ml_predictions_total[$__range])))", "{{severity}}")
    confidence = heatmap(
        "Prediction confidence distribution", "ml_prediction_confidence_ratio", "percentunit"
    )
    return [
        ts("Severity mix", [rate_by("ml_predictions_total", "severity")], unit="reqps", stack=True),
        ts("Severity share over the range", [share], unit="percentunit", minimum=0, maximum=1),
        confidence.span(8),
    ]


@BOARD.row("Feature distributions (buckets at the reference quantiles: healthy traffic fills them evenly)")
def features() -> PanelList:
    """One heatmap per input feature; the same words for each, so they are written here, not in texts/."""
    return [
        heatmap(f"{label} distribution", metric).description(
            f"Live distribution of the `{name}` input feature. Buckets sit at the training reference "
            "quantiles, so healthy traffic spreads evenly over the rows; drift piles it into the top or "
            "bottom rows."
        )
        for name, (metric, label) in FEATURES.items()
    ]


@BOARD.row("Drift (two-sample tests against the training reference, recomputed over the recent window)")
def drift() -> PanelList:
    per_feature = target("max by (feature) (ml_feature_drift_score)", "{{feature}}")
    drifted_share = target("max(ml_drifted_features_ratio)", "drifted share")
    verdict = value_texts({"0": ("no drift", "green"), "1": ("DRIFT", "red")})
    window = targets(
        ("max(ml_drift_window_samples)", "samples"), ("max(ml_drift_window_sufficient)", "sufficient")
    )
    evaluations = targets(
        (f"sum by (result) (rate(ml_drift_evaluations_total[{RI}]))", "{{result}}"),
        (quantile_expr("ml_drift_evaluation_duration_seconds", 0.9), "p90 duration"),
    )
    return [
        ts("Drift score per feature", [per_feature]),
        ts("Drifted features share", [drifted_share], unit="percentunit", minimum=0, maximum=1).line(
            Line(DRIFT_SHARE)
        ),
        stat("Dataset drift", [target("max(ml_dataset_drift_detected)", "dataset drift")], mappings=verdict),
        stat("Drifted features", [target("sum(ml_feature_drift_detected)", "drifted features")], decimals=0),
        ts("Prediction drift score", [target("max(ml_prediction_drift_score)", "prediction drift")]),
        ts("Drift window", window),
        right_axis(ts("Drift evaluations", evaluations, unit="ops"), "p90 duration", "s"),
        ts("Drift reports by outcome", [rate_by("ml_drift_reports_total", "outcome")], unit="reqps"),
    ]


@BOARD.row("Model")
def model() -> PanelList:
    return [
        stat(
            "Held-out accuracy",
            [target("max(ml_model_accuracy_ratio)", "accuracy")],
            "percentunit",
            decimals=1,
        ),
        stat(
            "Held-out macro-F1",
            [target("max(ml_model_macro_f1_ratio)", "macro-F1")],
            "percentunit",
            decimals=1,
        ),
        table("Loaded model", [target("ml_model_info", "{{version}}")]).span(16).height(5),
    ]
