"""Alerts on the monitoring pipeline itself: scrape targets, notifications, rule evaluation."""

from __future__ import annotations

from monitoring.contract import Alert, P

ALERTS = [
    Alert(
        name="TargetDown",
        group="monitoring",
        service="lab",
        family="availability",
        severity="critical",
        expr="up == {threshold}",
        op="==",
        params={"threshold": P(0)},
        for_=P("30s", production="2m"),
        summary="Prometheus cannot scrape {{ $labels.service }} ({{ $labels.instance }})",
        description=(
            "The {{ $labels.job }} target {{ $labels.instance }} has failed every scrape for at least 30 "
            "seconds: the process is down or unreachable, and its metrics (and alerts) are blind."
        ),
        dashboard="pipeline-health",
        panel="Targets up",
        signal="`up == 0` for a scrape target (value unused)",
        trigger=(
            "hang a process: `kill -STOP <pid>` (pid from `make status`; natively a killed process is "
            "restarted within a second), or `docker compose stop rag-api`"
        ),
    ),
    Alert(
        name="AlertmanagerNotificationsFailing",
        group="monitoring",
        service="lab",
        family="notifications",
        severity="critical",
        comment=(
            "Critical on purpose: the failing integration is usually Slack, and critical alerts also go "
            "by email."
        ),
        expr=(
            "sum by (service, integration) (increase(alertmanager_notifications_failed_total[1m]))\n"
            "> {threshold}"
        ),
        params={"threshold": P(0)},
        for_=P("30s", production="5m"),
        summary="Alertmanager cannot deliver {{ $labels.integration }} notifications",
        description=(
            "{{ $value | humanize }} {{ $labels.integration }} notifications failed in the last minute "
            "(after retries): alerts routed there are not reaching anyone."
        ),
        dashboard="pipeline-health",
        panel="Notifications failed by integration",
        signal="notifications that failed after retries, per `integration`, last minute",
        production_note="over `[15m]`",
        trigger=(
            'alert receiver `POST /admin/fail {"seconds": 120}` while an alert is firing (Slack fails, email '
            "still delivers this one)"
        ),
    ),
    Alert(
        name="ReceiverRejectingNotifications",
        group="monitoring",
        service="lab",
        family="notifications",
        severity="warning",
        comment="Injected faults (POST /admin/fail) are left out: AlertmanagerNotificationsFailing tells.",
        expr=(
            "sum by (service) (\n"
            '  increase(receiver_notifications_rejected_total{reason!="fault_injected"}[1m])\n'
            ") > {threshold}"
        ),
        params={"threshold": P(0)},
        for_=P("45s", production="10m"),
        summary="The alert receiver refuses notifications ({{ $labels.service }})",
        description=(
            "{{ $value | humanize }} webhook calls were refused in the last minute (invalid JSON or Slack "
            "shape, too deep, no text): whatever sends them is not being heard. The `reason` label of "
            "receiver_notifications_rejected_total says why."
        ),
        dashboard="pipeline-health",
        panel="Receiver: refused and evicted notifications",
        signal="webhook calls the receiver refused (`receiver_notifications_rejected_total`), last minute",
        production_note="over `[15m]`",
        trigger=(
            "post a malformed Slack payload: `curl -X POST localhost:9099/slack -H 'content-type: "
            "application/json' -d '{\"attachments\": 5}'`"
        ),
    ),
    Alert(
        name="PrometheusRuleEvaluationFailures",
        group="monitoring",
        service="lab",
        family="rules",
        severity="warning",
        expr=(
            "sum by (service, rule_group) (increase(prometheus_rule_evaluation_failures_total[1m]))\n"
            "> {threshold}"
        ),
        params={"threshold": P(0)},
        for_=P("30s", production="5m"),
        summary="Prometheus fails to evaluate rules of group {{ $labels.rule_group }}",
        description=(
            "{{ $value | humanize }} rule evaluations failed in the last minute: the alerts of that group "
            "cannot fire."
        ),
        dashboard="pipeline-health",
        panel="Rule evaluation failures",
        signal="rule evaluations that errored, per `rule_group`, last minute",
        production_note="over `[15m]`",
        trigger=(
            "only a broken rule (e.g. a vector match that finds duplicate series); covered by the promtool "
            "unit test"
        ),
    ),
    Alert(
        name="MetricObservationsDropped",
        group="monitoring",
        service="lab",
        family="metrics",
        severity="warning",
        comment=(
            "The services queue histogram observations and fold them in bulk (lab_common/metrics.py); an "
            "observation that cannot be kept is counted, so a histogram that under-counts is never silent."
        ),
        expr=(
            "sum by (service, queue) (\n"
            "  increase(ml_deferred_observations_dropped_total[1m])\n"
            "  or increase(rag_deferred_observations_dropped_total[1m])\n"
            ") > {threshold}"
        ),
        params={"threshold": P(0)},
        for_=P("30s", production="5m"),
        summary="{{ $labels.service }} lost {{ $labels.queue }} histogram observations",
        description=(
            "{{ $value | humanize }} {{ $labels.queue }} observations of {{ $labels.service }} were dropped "
            "in the last minute instead of reaching their histogram: its latency or input histograms "
            "under-count, and the alerts built on them may stay silent."
        ),
        dashboard="pipeline-health",
        panel="Dropped histogram observations",
        signal="deferred histogram observations dropped, per `service` and `queue`, last minute",
        trigger="none in normal operation (the queues flush on size); covered by the promtool unit test",
    ),
]
