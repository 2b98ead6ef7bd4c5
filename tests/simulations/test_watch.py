"""simulations.watch: an expected alert is matched by its service (and the labels its scenario knows), not by
its name alone, in Alertmanager's view and in the receiver's notifications.

The regression: during `simulations anomaly --shape ramp`, a LatencyMetricAnomaly of rag_api reached Slack
first and was counted as ml_api's (docs/benchmarks.md). The notifications here are the lab's own templates
rendered by amtool, stored the way the receiver stores them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from labctl.config import ROOT
from monitoring.anomaly import SIGNALS_BY_NAME
from receiver.parse import alert_label_sets, alert_names
from simulations.watch import Expected, Watch

SIGNAL = SIGNALS_BY_NAME["latency_p90"]
ALERT = SIGNAL.alert
EXPECTED = Expected(
    ALERT,
    "ml_api",
    "ML latency anomaly score",
    "vector(1)",
    labels={"anomaly_name": (SIGNAL.name,), "anomaly_type": SIGNAL.types},
)


def labels(service: str, anomaly_type: str = "ramp", **more: str) -> dict[str, str]:
    return {
        "alertname": ALERT,
        "anomaly_name": SIGNAL.name,
        "anomaly_type": anomaly_type,
        "family": "anomaly",
        "service": service,
        "severity": "warning",
        **more,
    }


def render(template: str, alert_labels: dict[str, str]) -> str:
    """One of alertmanager/templates' templates, rendered by amtool for a group of one firing alert."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not on PATH (make tools)")
    group = {k: alert_labels[k] for k in ("alertname", "service", "severity")}
    data = {
        "receiver": "slack",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": alert_labels,
                "annotations": {"summary": f"Unusual latency_p90 on {alert_labels['service']}"},
                "startsAt": "2026-01-02T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": alert_labels["service"],
            }
        ],
        "groupLabels": group,
        "commonLabels": alert_labels,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(data, file)
    path = Path(file.name)
    try:
        out = subprocess.run(
            [
                amtool,
                "template",
                "render",
                f"--template.glob={ROOT / 'alertmanager' / 'templates' / '*.tmpl'}",
                f"--template.data={path}",
                f"--template.text={{{{ template {json.dumps(template)} . }}}}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        path.unlink()
    assert out.returncode == 0, out.stderr
    return out.stdout


def slack_notification(alert_labels: dict[str, str]) -> dict[str, Any]:
    title, text = render("slack.lab.title", alert_labels), render("slack.lab.text", alert_labels)
    payload = {"attachments": [{"title": title.strip(), "text": text}]}
    return {"status": "firing", "alerts": alert_names(title, text), "payload": payload}


def email_notification(alert_labels: dict[str, str]) -> dict[str, Any]:
    subject, body = render("email.lab.subject", alert_labels), render("email.lab.text", alert_labels)
    return {"status": "firing", "alerts": alert_names(subject, body), "subject": subject, "body": body}


def test_the_label_sets_of_a_rendered_notification() -> None:
    rag = labels("rag_api")
    assert alert_label_sets(*[render("slack.lab.text", rag)]) == [rag]
    assert alert_label_sets(render("email.lab.text", rag)) == [rag]
    assert alert_label_sets("[FIRING:1] Something", "no label line here") == []


def test_the_other_services_alert_of_the_same_name_is_not_the_expected_one() -> None:
    assert EXPECTED.matches(labels("ml_api"))
    assert not EXPECTED.matches(labels("rag_api"))
    assert not EXPECTED.matches({**labels("ml_api"), "anomaly_name": "error_ratio"})
    assert not EXPECTED.matches(labels("ml_api", anomaly_type="seasonal"))  # not a type this signal raises
    for make in (slack_notification, email_notification):
        rag, ml = make(labels("rag_api")), make(labels("ml_api"))
        assert ALERT in rag["alerts"], "the name alone cannot tell them apart"
        assert not EXPECTED.notified_by(rag)
        assert EXPECTED.notified_by(ml)
        assert not EXPECTED.notified_by({**ml, "status": "resolved"})


def test_a_message_without_label_lines_is_matched_by_name() -> None:
    """Another template (a real Slack set-up with its own) prints no labels: the name is all there is."""
    bare = {"status": "firing", "alerts": [ALERT], "payload": {"text": f"[FIRING:1] {ALERT}"}}
    assert EXPECTED.notified_by(bare)


class Lab:
    """What Watch.poll reads from a lab: Prometheus's value and alert state, the receiver's notifications."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.states: list[tuple[str, dict]] = []

    def query_max(self, expr: str) -> float:
        return 1.0

    def prometheus_alert_state(self, alertname: str, labels: dict | None = None) -> str:
        self.states.append((alertname, dict(labels or {})))
        return "firing"

    def notifications(self, channel: str, since: float) -> list[dict[str, Any]]:
        return [n for n in self.sent if n["channel"] == channel and n["received_at_epoch"] >= since]


def am_alert(alert_labels: dict[str, str], starts: float) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(starts)) + ".000Z"
    return {"labels": alert_labels, "status": {"state": "active"}, "startsAt": started}


def test_a_watch_does_not_count_another_services_alert_or_notification() -> None:
    lab, injected = Lab(), time.time() - 60
    watch = Watch("anomaly", EXPECTED)
    rag = [am_alert(labels("rag_api"), injected + 10)]
    lab.sent.append(
        {**slack_notification(labels("rag_api")), "channel": "slack", "received_at_epoch": injected + 11}
    )
    watch.poll(lab, injected, rag)  # type: ignore[arg-type]
    assert watch.fired_after is None and watch.alertmanager_state is None
    assert lab.states[-1] == (ALERT, {"service": ("ml_api",), **EXPECTED.labels})

    ml = [*rag, am_alert(labels("ml_api", anomaly_type="level_shift"), injected + 30)]
    watch.poll(lab, injected, ml)  # type: ignore[arg-type]
    assert watch.fired_after is not None and 29 <= watch.fired_after <= 31
    assert watch.notified_after.get("slack") is None, "rag_api's Slack message is not ml_api's"
    lab.sent.append(
        {**slack_notification(labels("ml_api")), "channel": "slack", "received_at_epoch": injected + 32}
    )
    watch.poll(lab, injected, ml)  # type: ignore[arg-type]
    assert watch.notified_after["slack"] == pytest.approx(32, abs=0.01)
