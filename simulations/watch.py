"""Watching a fault travel: the metric in Prometheus, the alert in Alertmanager, the receiver's notifications.

One `Watch` per expected alert. Times are measured from the injection: time-to-fire is when Alertmanager first
shows the alert active (not inhibited, not silenced), time-to-notify is when the receiver got the first firing
notification naming it, per channel. Which channels to expect follows Alertmanager's routing
(alertmanager/alertmanager.yml): every alert goes to Slack, critical ones also by email, and security ones
(`team="security"`) to their own Slack channel and mailbox whatever the severity.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import yaml

from lab_common.endpoints import LOCAL_HOST, default_port
from labctl.ui import alertmanager_page, prometheus_page
from receiver.parse import alert_label_sets, slack_texts
from simulations.data import ROOT
from simulations.lab import Lab

CHANNELS_BY_SEVERITY = {"critical": ("slack", "email"), "warning": ("slack",)}
SECURITY_CHANNELS = ("slack", "email")  # the security route: Slack and email for every severity


@cache
def rule_labels() -> dict[str, dict[str, str]]:
    """alertname -> its labels in the repository's rules."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in data.get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule:
                    found[rule["alert"]] = dict(rule.get("labels") or {})
    return found


def rule_severities() -> dict[str, str]:
    """alertname -> severity from the repository's rules (Alertmanager's label wins once it has the alert)."""
    return {name: labels.get("severity", "") for name, labels in rule_labels().items()}


@dataclass(frozen=True)
class Expected:
    alert: str
    service: str  # the alert's `service` label (ml_api, rag_api)
    metric: str  # what the table calls the watched value
    query: str  # PromQL; the largest sample is taken
    # The series the contract's threshold compares, when it is not `query` (drift alerts test a 0/1 flag
    # while the table shows the KS distance); the report's chart draws both.
    signal: str | None = None
    # Other labels the alert must carry, each with the values that count (the anomaly scenario: its signal's
    # `anomaly_name` and the `anomaly_type`s it can raise). Name and service alone are not enough: anomaly
    # alerts of every service and signal share a name.
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Is an alert with these labels the one expected: same name, same service, the known labels."""
        wanted = {"alertname": (self.alert,), "service": (self.service,), **self.labels}
        return all(labels.get(name) in values for name, values in wanted.items())

    def notified_by(self, notification: Mapping[str, Any]) -> bool:
        """Does a receiver's notification (`GET /notifications` item) announce this alert? By the label sets
        its text prints; by name only for a message that prints none (not the lab's templates)."""
        if notification.get("status") not in ("firing", "mixed"):
            return False
        if notification.get("payload") is not None:
            texts = slack_texts(notification["payload"])
        else:
            texts = [str(notification.get(key) or "") for key in ("subject", "body")]
        label_sets = alert_label_sets(*texts)
        if not label_sets:
            return self.alert in (notification.get("alerts") or [])
        return any(self.matches(labels) for labels in label_sets)


@dataclass
class Watch:
    scenario: str
    expected: Expected
    before: float | None = None
    peak: float | None = None
    severity: str | None = None
    prometheus_state: str = "inactive"
    alertmanager_state: str | None = None  # active, suppressed, unprocessed
    suppressed_by: list[str] = field(default_factory=list)
    pending_after: float | None = None  # first seen pending in Prometheus (by this once-a-second poll)
    fired_after: float | None = None
    notified_after: dict[str, float | None] = field(default_factory=dict)
    resolved_after: float | None = None
    recovery_waited: float | None = None

    def __post_init__(self) -> None:
        self.severity = rule_severities().get(self.expected.alert) or None

    @property
    def channels(self) -> tuple[str, ...]:
        if rule_labels().get(self.expected.alert, {}).get("team") == "security":
            return SECURITY_CHANNELS
        return CHANNELS_BY_SEVERITY.get(self.severity or "", ("slack",))

    @property
    def delivered(self) -> bool:
        return self.fired_after is not None and all(
            self.notified_after.get(ch) is not None for ch in self.channels
        )

    def poll(self, lab: Lab, injected_at: float, am_alerts: list[dict[str, Any]]) -> list[str]:
        """Update from the lab; returns the milestones reached in this poll (for the log)."""
        events: list[str] = []
        now = time.time()
        value = lab.query_max(self.expected.query)
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value
        if self.fired_after is None:
            self.prometheus_state = lab.prometheus_alert_state(
                self.expected.alert, {"service": (self.expected.service,), **self.expected.labels}
            )
            if self.prometheus_state in ("pending", "firing") and self.pending_after is None:
                self.pending_after = now - injected_at
        mine = [a for a in am_alerts if self.expected.matches(a.get("labels", {}))]
        states = {a.get("status", {}).get("state") for a in mine}
        self.alertmanager_state = (
            "active" if "active" in states else next(iter(sorted(s for s in states if s)), None)
        )
        self.suppressed_by = sorted(
            {
                x
                for a in mine
                for key in ("inhibitedBy", "silencedBy")
                for x in (a.get("status", {}).get(key) or [])
            }
        )
        if self.fired_after is None and self.alertmanager_state == "active":
            # startsAt is when Prometheus turned it firing and sent it (within milliseconds of Alertmanager
            # having it): more precise than this once-a-second poll.
            starts = [_epoch(a.get("startsAt")) for a in mine if a.get("status", {}).get("state") == "active"]
            starts = [s for s in starts if s is not None and injected_at <= s <= now]
            self.fired_after = (min(starts) if starts else now) - injected_at
            self.prometheus_state = "firing"
            self.severity = mine[0]["labels"].get("severity") or self.severity
            events.append(
                f"{self.expected.alert} ({self.severity}) is active in Alertmanager "
                f"after {self.fired_after:.1f}s"
            )
        if self.fired_after is not None:
            for channel in self.channels:
                if self.notified_after.get(channel) is not None:
                    continue
                hits = [
                    n["received_at_epoch"]
                    for n in lab.notifications(channel, injected_at)
                    if self.expected.notified_by(n)
                ]
                if hits:
                    self.notified_after[channel] = min(hits) - injected_at
                    after = self.notified_after[channel]
                    events.append(f"{self.expected.alert}: {channel} notification after {after:.1f}s")
        return events

    def hint(self, lab: Lab, timeout: float) -> str:
        """Where the chain broke, and what to check there."""
        urls = lab.urls
        name = self.expected.alert
        if self.fired_after is not None:
            missing = [ch for ch in self.channels if self.notified_after.get(ch) is None]
            return (
                f"{name} is active in Alertmanager but no {' / '.join(missing)} notification reached the "
                f"receiver ({urls.receiver}/notifications). Check Alertmanager's log and "
                "`alertmanager_notifications_failed_total`, the Slack webhook URL file "
                "(alertmanager/secrets/slack_webhook_url) and the SMTP smarthost "
                f"({LOCAL_HOST}:{default_port('receiver_smtp')} unless moved)."
            )
        if self.alertmanager_state is not None:
            why = f" by {', '.join(self.suppressed_by)}" if self.suppressed_by else ""
            page = alertmanager_page(lab, urls.alertmanager)
            return (
                f"Alertmanager holds {name} but it is {self.alertmanager_state}{why} (an inhibition rule or "
                f"a silence mutes it): see {page.url or page.note} and alertmanager.yml's inhibit_rules."
            )
        if self.prometheus_state == "firing":
            return (
                f"Prometheus fires {name} but Alertmanager does not have it: check that Prometheus knows "
                f"Alertmanager ({prometheus_page(lab, urls.prometheus, 'status')}) and that "
                f"{urls.alertmanager} is up."
            )
        if self.prometheus_state == "pending":
            return (
                f"{name} was still pending in Prometheus after {timeout:.0f}s: its `for:` had not elapsed. "
                "Give it more time (--timeout) or keep the fault on longer (--duration)."
            )
        if self.pending_after is not None:
            return (
                f"{name} went pending in Prometheus after {self.pending_after:.0f}s but was back to inactive "
                f"before its `for:` elapsed: {self.expected.metric} (peak {fmt(self.peak)}) did not stay "
                "past the threshold. Keep the fault on longer (--duration) or make it stronger."
            )
        moved = self.peak is not None and (self.before is None or self.peak > self.before)
        if not moved:
            return (
                f"{self.expected.metric} did not move (before {fmt(self.before)}, peak {fmt(self.peak)}): "
                "the fault did not reach the service, or Prometheus does not scrape it. Check "
                f"{prometheus_page(lab, urls.prometheus, 'targets')}, the simulation's request counts above, "
                "and GET /admin/faults on the service."
            )
        return (
            f"{self.expected.metric} moved (before {fmt(self.before)}, peak {fmt(self.peak)}) but {name} "
            "never became pending: its threshold was not crossed. Compare with the rule "
            f"({prometheus_page(lab, urls.prometheus, 'alerts')}, prometheus/rules/alerts.yml) and use a "
            "stronger fault."
        )


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
