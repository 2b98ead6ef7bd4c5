"""Every link of a received notification answers, natively: one critical alert is fired for real, its Slack
message and its email are taken from the receiver, and each link in them is followed.

The native test lab runs without Grafana, so the dashboard link must be the Prometheus graph of the alert's
expression (monitoring.render.Links, rendered by labctl with this lab's ports), the runbook link the
receiver's /runbooks page with the alert's section in it, and the email's link to the alerts the receiver's
inbox page (Debian's Alertmanager has no web UI to link to).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import Lab
from .test_alerts_e2e import DRIFT_ALERT, drifted_window

pytestmark = pytest.mark.timeout(600)

# `<url|Runbook>` in Slack's mrkdwn, plus the attachment's title_link; href="url" in the email's HTML.
SLACK_LINK = re.compile(r"<(https?://[^|>\s]+)\|")
HREF = re.compile(r'href="(https?://[^"]+)"')


def slack_links(notification: dict[str, Any]) -> set[str]:
    payload = notification["payload"]
    links = set(SLACK_LINK.findall(json.dumps(payload)))
    links |= {a["title_link"] for a in payload.get("attachments") or [] if a.get("title_link")}
    return {json.loads(f'"{link}"') for link in links}  # undo JSON's escapes (\u0026 ...)


def email_links(notification: dict[str, Any]) -> set[str]:
    return {html.unescape(link) for link in HREF.findall(notification.get("html") or "")}


def fire_drift(lab: Lab) -> float:
    """Drift the window until MLDataDriftDetected (critical: Slack and email) is notified; returns `since`."""
    with drifted_window(lab, seed=5151, label="links: data drift") as since:
        return since


def test_every_link_of_a_notification_answers(lab: Lab) -> None:
    since = fire_drift(lab)
    slack = lab.notified(DRIFT_ALERT, "slack", since)[0]
    email = lab.notified(DRIFT_ALERT, "email", since)[0]
    links = {"slack": slack_links(slack), "email": email_links(email)}
    prometheus = lab.prometheus_url.replace("127.0.0.1", "localhost")
    for channel, found in links.items():
        runbooks = [u for u in found if urlsplit(u).path == "/runbooks"]
        graphs = [u for u in found if u.startswith(f"{prometheus}/graph?g0.expr=")]
        assert runbooks, f"{channel}: no runbook link among {sorted(found)}"
        # Two graph links: the dashboard fallback (no Grafana here) and Prometheus's own Query link.
        assert len(graphs) >= 2, f"{channel}: the dashboard link is not the Prometheus graph: {sorted(found)}"
        assert not [u for u in found if "/d/" in u], f"{channel}: a Grafana link without Grafana: {found}"
    # Debian's Alertmanager has no web UI: the email's "alerts" link is the receiver's inbox for the alert.
    receiver = lab.receiver_url.replace("127.0.0.1", "localhost")
    assert f"{receiver}/inbox?alert={DRIFT_ALERT}" in links["email"], sorted(links["email"])
    alertmanager = lab.alertmanager_url.replace("127.0.0.1", "localhost")
    assert not [u for u in links["slack"] | links["email"] if u.startswith(alertmanager)]
    with httpx.Client(follow_redirects=True, timeout=15) as client:
        for link in sorted(links["slack"] | links["email"]):
            r = client.get(link)
            assert r.status_code == 200, f"{link} -> {r.status_code} (final URL {r.url})"
            fragment = urlsplit(link).fragment
            if urlsplit(link).path == "/runbooks":
                assert f'id="{fragment}"' in r.text, f"{link}: the runbooks page has no section {fragment}"
    lab.figures["links followed in one Slack message + one email"] = len(links["slack"] | links["email"])
