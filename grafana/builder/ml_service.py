"""The ML service dashboard (uid ml-service): ml_api traffic, predictions, input features, drift, model."""

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

FEATURES_ROW = "Feature distributions (buckets at the reference quantiles: healthy traffic fills them evenly)"
PanelList = list[Builder[dm.Panel]]


def traffic() -> PanelList:
    return [
        requests_by_status(
            ML_API,
            " Look for 5xx series appearing (fault `errors`) and 422s (bad input) growing relative to 200s.",
        ),
        error_ratio(ML_API, " Healthy traffic stays at 0; the `errors` fault lifts it to its rate."),
        ts(
            "Prediction latency percentiles",
            "p50/p90/p99 of /predict and /predict/batch (the scope of the latency alerts). The `latency` "
            "fault lifts every percentile by its delay; a lone p99 rise means a few slow requests.",
            quantiles("ml_http_request_duration_seconds", where=ML_SERVING),
            unit="s",
        ),
        p90_by_endpoint(ML_API),
        ts(
            "Invalid requests by reason",
            "Requests rejected with 422, by pydantic error type. A burst usually means a client sends "
            "out-of-range or missing fields; compare with the feature heatmaps.",
            [rate_by("ml_invalid_requests_total", "reason")],
            unit="reqps",
            stack=True,
        ),
    ]


def predictions() -> PanelList:
    share = (
        "sum by (severity) (increase(ml_predictions_total[$__range])) "
        "/ scalar(sum(increase(ml_predictions_total[$__range])))"
    )
    return [
        ts(
            "Severity mix",
            "Predictions per second by predicted class. A shift of the mix without a traffic change is "
            "prediction drift: check the drift row below.",
            [rate_by("ml_predictions_total", "severity")],
            unit="reqps",
            stack=True,
        ),
        ts(
            "Severity share over the range",
            "Share of each predicted class over the selected time range.",
            [target(share, "{{severity}}")],
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
        ).span(8),
    ]


def features() -> PanelList:
    return [
        heatmap(
            f"{label} distribution",
            f"Live distribution of the `{name}` input feature. Buckets sit at the training reference "
            "quantiles, so healthy traffic spreads evenly over the rows; drift piles it into the top or "
            "bottom rows.",
            metric,
        )
        for name, (metric, label) in FEATURES.items()
    ]


def drift_verdicts() -> PanelList:
    return [
        ts(
            "Drift score per feature",
            "Per-feature drift score: the Kolmogorov-Smirnov distance (0-1) between the recent window and "
            "the training reference. Absent while the window is too small. The feature whose score moves "
            "first is the one that drifted.",
            [target("max by (feature) (ml_feature_drift_score)", "{{feature}}")],
        ),
        ts(
            "Drifted features share",
            "Share of input features whose two-sample test (KS for continuous, chi-square for discrete "
            "features, Bonferroni-corrected) flags drift. ml_api declares dataset drift (and "
            "`MLDataDriftDetected` fires) when at least this share drifted: the dashed line.",
            [target("max(ml_drifted_features_ratio)", "drifted share")],
            unit="percentunit",
            minimum=0,
            maximum=1,
        ).line(Line(DRIFT_SHARE)),
        stat(
            "Dataset drift",
            "1 (red) when ml_api declares the dataset as a whole drifted in the current window.",
            [target("max(ml_dataset_drift_detected)", "dataset drift")],
            mappings=value_texts({"0": ("no drift", "green"), "1": ("DRIFT", "red")}),
        ),
        stat(
            "Drifted features",
            "How many features are flagged as drifted right now (each gauge is 1 when drifted).",
            [target("sum(ml_feature_drift_detected)", "drifted features")],
            decimals=0,
        ),
    ]


def drift() -> PanelList:
    return [*drift_verdicts(), *drift_inputs()]


def drift_inputs() -> PanelList:
    evaluations = ts(
        "Drift evaluations",
        "Background drift computations per second by result, and the p90 of their duration (right "
        "axis). `error` should stay at 0; `insufficient_data` is normal right after start.",
        targets(
            (f"sum by (result) (rate(ml_drift_evaluations_total[{RI}]))", "{{result}}"),
            (quantile_expr("ml_drift_evaluation_duration_seconds", 0.9), "p90 duration"),
        ),
        unit="ops",
    )
    return [
        ts(
            "Prediction drift score",
            "Jensen-Shannon distance (0-1) of the predicted-class mix against the reference predictions. It "
            "can move without input drift when the model meets a new mix of tickets.",
            [target("max(ml_prediction_drift_score)", "prediction drift")],
        ),
        ts(
            "Drift window",
            "Tickets in the drift window, and whether it holds enough to judge drift (1 = sufficient). "
            "Drift scores are absent while it is 0.",
            targets(
                ("max(ml_drift_window_samples)", "samples"),
                ("max(ml_drift_window_sufficient)", "sufficient"),
            ),
        ),
        right_axis(evaluations, "p90 duration", "s"),
    ]


def model() -> PanelList:
    return [
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
        )
        .span(16)
        .height(5),
    ]


BOARD = Board(
    uid="ml-service",
    title="ML service",
    description="ml_api: traffic, latency, predictions, input feature distributions, drift (KS and "
    "chi-square tests), model quality.",
    rows=[
        ("Traffic", traffic),
        ("Predictions", predictions),
        (FEATURES_ROW, features),
        ("Drift (two-sample tests against the training reference, recomputed over the recent window)", drift),
        ("Model", model),
    ],
)
