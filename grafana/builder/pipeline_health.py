"""The pipeline health dashboard (uid pipeline-health): the monitoring pipeline itself, from triage between
the services to scrape targets, alerts and notifications."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .board import Board
from .panels import FIRING, quantile_expr, quantiles, rate_by, share, stat, table, target, value_texts
from .panels import timeseries as ts
from .thresholds import Line

PanelList = list[Builder[dm.Panel]]


def triage() -> PanelList:
    degraded = share("triage_requests_total", 'outcome="degraded"')
    return [
        ts(
            "Triage latency",
            "End-to-end /triage p50/p90/p99, and the p90 of the RAG call inside it. When the RAG call "
            "times out, triage answers degraded at about the timeout.",
            [
                *quantiles("triage_request_duration_seconds"),
                target(quantile_expr("triage_rag_call_duration_seconds", 0.9), "RAG call p90", "D"),
            ],
            unit="s",
        ),
        ts(
            "Triage degraded ratio",
            "Share of /triage calls that fell back to the ML prediction only (RAG slow, down or failing).",
            [target(degraded, "degraded share")],
            unit="percentunit",
            minimum=0,
        ),
        ts(
            "Triage degraded by reason",
            "Why triage fell back: `timeout` (rag_api slow), `unavailable` (down), `error` (it failed).",
            [rate_by("triage_degraded_total", "reason")],
            unit="reqps",
            stack=True,
        ),
    ]


def targets_and_alerts() -> PanelList:
    return [
        stat(
            "Targets up",
            "Every scrape target Prometheus knows: UP (green) or DOWN (red). A DOWN target means its "
            "metrics and the alerts built on them are blind; `TargetDown` fires after 30 s.",
            [target("up", "{{job}} {{instance}}")],
            mappings=value_texts({"0": ("DOWN", "red"), "1": ("UP", "green")}),
        )
        .line(Line(1, above=False))
        .span(12)
        .height(6),
        stat(
            "Firing alerts",
            "How many alerts fire now (pending ones are not counted).",
            [target(f"count({FIRING}) or vector(0)", "firing")],
            decimals=0,
        )
        .line(Line(1))
        .height(6),
        table(
            "Firing and pending alerts",
            "Each alert series with its state and labels. Pending alerts wait out their `for:` duration.",
            [target("ALERTS", "{{alertname}}")],
        )
        .span(8)
        .height(6),
        ts(
            "Firing alerts by name",
            "Firing alert series over time, by alert name and severity.",
            [target(f"count by (alertname, severity) ({FIRING})", "{{alertname}} ({{severity}})")],
            stack=True,
        ).span(12),
        ts(
            "Rule evaluation failures",
            "Failed recording/alerting rule evaluations per second by rule group. Should stay at 0: a "
            "failing rule cannot fire (`PrometheusRuleEvaluationFailures`).",
            [rate_by("prometheus_rule_evaluation_failures_total", "rule_group")],
            unit="ops",
        ).span(12),
    ]


def notifications() -> PanelList:
    return [
        ts(
            "Notifications sent by integration",
            "Notification attempts per second by integration (slack, email). A step here should match a "
            "message in the alert receiver or Slack.",
            [rate_by("alertmanager_notifications_total", "integration")],
            unit="ops",
        ).span(12),
        ts(
            "Notifications failed by integration",
            "Failed notification attempts (Alertmanager retries them). Non-zero means a webhook answers "
            "errors or the SMTP smarthost refuses mail; `AlertmanagerNotificationsFailing` fires.",
            [rate_by("alertmanager_notifications_failed_total", "integration")],
            unit="ops",
        ).span(12),
    ]


BOARD = Board(
    uid="pipeline-health",
    title="Pipeline health",
    description="The monitoring pipeline itself: triage between the services, scrape targets, alerts, "
    "notifications.",
    rows=[
        ("Triage (ml_api /triage calls rag_api)", triage),
        ("Scrape targets and alerts", targets_and_alerts),
        ("Alertmanager notifications", notifications),
    ],
)
