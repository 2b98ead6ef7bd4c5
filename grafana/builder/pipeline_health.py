"""The pipeline health dashboard (uid pipeline-health): the monitoring pipeline itself, from triage between
the services to scrape targets, alerts and notifications. Words: texts/pipeline-health.md."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .board import Board
from .panels import FIRING, RI, quantile_expr, quantiles, rate_by, share, stat, table, target, value_texts
from .panels import timeseries as ts
from .shared import RECEIVER, p90_by_endpoint, requests_by_status
from .thresholds import Line

PanelList = list[Builder[dm.Panel]]
BOARD = Board("pipeline-health")


@BOARD.row("Triage (ml_api /triage calls rag_api)")
def triage() -> PanelList:
    rag_p90 = target(quantile_expr("triage_rag_call_duration_seconds", 0.9), "RAG call p90", "D")
    degraded = target(share("triage_requests_total", 'outcome="degraded"'), "degraded share")
    return [
        ts("Triage latency", [*quantiles("triage_request_duration_seconds"), rag_p90], unit="s"),
        ts("Triage degraded ratio", [degraded], unit="percentunit", minimum=0),
        ts(
            "Triage degraded by reason",
            [rate_by("triage_degraded_total", "reason")],
            unit="reqps",
            stack=True,
        ),
    ]


@BOARD.row("Scrape targets and alerts")
def targets_and_alerts() -> PanelList:
    up = value_texts({"0": ("DOWN", "red"), "1": ("UP", "green")})
    by_name = target(f"count by (alertname, severity) ({FIRING})", "{{alertname}} ({{severity}})")
    failures = rate_by("prometheus_rule_evaluation_failures_total", "rule_group")
    dropped = [
        rate_by(f"{prefix}_deferred_observations_dropped_total", "service, queue") for prefix in ("ml", "rag")
    ]
    return [
        # One line, 6 high: targets (12 wide), the firing count (4) and the alerts table (8).
        stat("Targets up", [target("up", "{{job}} {{instance}}")], mappings=up).span(12).height(6),
        stat("Firing alerts", [target(f"count({FIRING}) or vector(0)", "firing")], decimals=0)
        .line(Line(1))
        .height(6),
        table("Firing and pending alerts", [target("ALERTS", "{{alertname}}")]).span(8).height(6),
        ts("Firing alerts by name", [by_name], stack=True).span(8),
        ts("Rule evaluation failures", [failures], unit="ops").span(8),
        ts("Dropped histogram observations", dropped, unit="ops").span(8),
    ]


@BOARD.row("Anomalies (signals against their own baseline)")
def anomalies() -> PanelList:
    """Scores and bands of the anomaly rules (prometheus/rules/anomaly.yml, monitoring/anomaly.py)."""
    score = target("max by (service, anomaly_name) (anomaly:score)", "{{service}} {{anomaly_name}}")
    band = 'anomaly_name="latency_p90"'
    latency = [
        target(f"anomaly:signal{{{band}}}", "{{service}} p90", "A"),
        target(f"anomaly:signal:band_upper{{{band}}}", "{{service}} band upper", "B"),
        target(f"clamp_min(anomaly:signal:band_lower{{{band}}}, 0)", "{{service}} band lower", "C"),
    ]
    # The in-service CUSUM (lab_common/cusum.py): the statistic as a share of its decision interval.
    cusum = target(
        'ml_cusum_score{signal="latency"} or rag_cusum_score{signal="latency"}',
        "{{service}} {{direction}}",
    )
    return [
        ts("Anomalies", [score], minimum=0, maximum=1),
        ts("Latency p90 and its band", latency, unit="s", minimum=0),
        table("Anomaly alerts", [target('ALERTS{family="anomaly"}', "{{alertname}}")]).span(8),
        ts("Latency CUSUM", [cusum], minimum=0).span(24),
    ]


@BOARD.row("Alertmanager notifications")
def notifications() -> PanelList:
    sent = rate_by("alertmanager_notifications_total", "integration")
    failed = rate_by("alertmanager_notifications_failed_total", "integration")
    return [
        ts("Notifications sent by integration", [sent], unit="ops").span(12),
        ts("Notifications failed by integration", [failed], unit="ops").span(12),
    ]


@BOARD.row("Alert receiver (the lab's Slack and SMTP stand-in)")
def receiver() -> PanelList:
    stored = rate_by("receiver_notifications_total", "channel", "stored ({{channel}})")
    duplicates = rate_by("receiver_notifications_duplicate_total", "channel", "duplicate ({{channel}})", "B")
    refused = rate_by("receiver_notifications_rejected_total", "reason", "refused ({{reason}})")
    evicted = rate_by("receiver_notifications_evicted_total", "place", "evicted ({{place}})", "B")
    bad_lines = target("sum(receiver_archive_bad_lines_total)", "archive lines skipped at start")
    am_errors = target(
        f"sum(rate(receiver_alertmanager_api_errors_total[{RI}]))", "Alertmanager API errors", "B"
    )
    return [
        ts("Receiver: notifications stored and duplicates", [stored, duplicates], unit="ops").span(8),
        ts("Receiver: refused and evicted notifications", [refused, evicted], unit="ops").span(8),
        ts("Receiver: archive and inbox-page errors", [bad_lines, am_errors]).span(8),
        requests_by_status(RECEIVER),
        p90_by_endpoint(RECEIVER),
    ]
