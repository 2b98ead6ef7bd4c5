"""The receiver's pages: the inbox (in headless Chromium, fed by a real Alertmanager) and the runbooks."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from lab_common.net import free_port
from monitoring.contract import alerts_by_name
from monitoring.render import Links
from receiver.inbox import mrkdwn
from receiver.runbooks import anchor
from tests.support.receiver import (
    ROOT,
    Elements,
    Receiver,
    dump_dom,
    needs_chromium,
    start_receiver,
    stop,
)

AM_DIR = ROOT / "alertmanager"
ALERT_RULES = ROOT / "prometheus" / "rules" / "alerts.yml"
HOSTILE = '<img src=x onerror="document.title=1"><script>document.title=2</script>'


@dataclass
class Lab:
    receiver: Receiver
    am: str
    am_proc: subprocess.Popen

    def post(self, *alerts: dict) -> None:
        response = httpx.post(f"{self.am}/api/v2/alerts", json=list(alerts), timeout=5)
        assert response.status_code == 200, response.text

    def wait_for(self, channel: str, name: str, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.receiver.client() as client:
                items = client.get("/notifications", params={"channel": channel}).json()["notifications"]
            found = [n for n in items if name in n["alerts"]]
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no {channel} notification of {name} within {timeout} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The committed Alertmanager config and templates, delivering to a receiver on free ports."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("Alertmanager not installed (make tools)")
    tmp = tmp_path_factory.mktemp("inbox")
    am_port = free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    receiver = start_receiver(tmp, RECEIVER_ALERTMANAGER_URL=am_url, RECEIVER_ECHO="false")
    conf = tmp / "alertmanager"
    shutil.copytree(AM_DIR, conf, ignore=shutil.ignore_patterns("secrets"))
    text = (AM_DIR / "alertmanager.yml").read_text()
    smarthost = f"smtp_smarthost: 127.0.0.1:{receiver.smtp_port}"
    (conf / "alertmanager.yml").write_text(text.replace("smtp_smarthost: 127.0.0.1:2525", smarthost))
    (conf / "secrets").mkdir()
    (conf / "secrets" / "slack_webhook_url").write_text(f"{receiver.url}/slack\n")
    am = subprocess.Popen(
        [
            binary, "--config.file=alertmanager.yml", f"--storage.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{am_port}", f"--web.external-url={am_url}",
            "--cluster.listen-address=",
        ],
        cwd=conf, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{am_url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Lab(receiver, am_url, am)
    finally:
        am.terminate()
        am.wait(10)
        stop(receiver)


def alert(name: str, severity: str = "critical", family: str = "errors", **annotations: str) -> dict:
    # Each test's alert has its own family: a critical mutes the warnings of its family and service.
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "service": "ml_api", "severity": severity, "family": family},
        "annotations": {
            "summary": f"{name} summary",
            "description": f"{name} measured 42",
            "runbook_url": f"http://127.0.0.1:9099/runbooks#{name.lower()}",
            **annotations,
        },
        "startsAt": (now - timedelta(seconds=30)).isoformat(),
        "endsAt": (now + timedelta(seconds=600)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


def test_inbox_in_chromium_shows_delivered_alerts_and_alertmanager_state(lab: Lab, tmp_path: Path) -> None:
    needs_chromium()
    # The runbook link as the contract's generator writes it, with this receiver as the base.
    runbook = Links(runbook_base=f"{lab.receiver.url}/runbooks").runbook(alerts_by_name()["MLHighErrorRatio"])
    lab.post(alert("MLHighErrorRatio", summary=f"5xx share high {HOSTILE}", runbook_url=runbook))
    slack = lab.wait_for("slack", "MLHighErrorRatio")
    lab.wait_for("email", "MLHighErrorRatio")
    group = 'slack:{alertname="MLHighErrorRatio",service="ml_api",severity="critical"}'
    assert slack[0]["group_key"] == group
    # The template's identity: the group, then its firing and resolved alerts (fingerprint@startsAt in ms).
    identity = slack[0]["payload"]["attachments"][0]["callback_id"]
    assert re.fullmatch(re.escape(group) + r"\|firing=[0-9a-f]{16}@\d{13}\|resolved=", identity), identity
    silence = {
        "matchers": [{"name": "alertname", "value": "MLFeatureDrift", "isRegex": False, "isEqual": True}],
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "createdBy": "learner",
        "comment": "investigating the drift",
    }
    assert httpx.post(f"{lab.am}/api/v2/silences", json=silence, timeout=5).status_code == 200

    page = Elements(dump_dom(f"{lab.receiver.url}/inbox", tmp_path))
    text = " ".join(page.text)
    slack_cards = page.having("article", **{"data-channel": "slack", "data-status": "firing"})
    assert slack_cards, "no firing Slack message drawn"
    titles = [a for a in page.having("a", **{"class": "title"})]
    assert any("[FIRING:1] MLHighErrorRatio" in text for _ in titles)
    # Colour by status: the template's `danger` becomes Slack's red bar.
    assert any("#e01e5a" in (a.get("style") or "") for a in page.having("div", **{"class": "attachment"}))
    assert [a for _, a in page.tags if a.get("href") == runbook], "the Slack text's Runbook is not a link"
    # ... and it resolves: the page answers and has the section the fragment names.
    followed = httpx.get(runbook, timeout=10)
    assert followed.status_code == 200
    assert f'id="{urlsplit(runbook).fragment}"' in followed.text
    frames = page.having("iframe")
    assert frames and all(f.get("sandbox") == "allow-popups allow-popups-to-escape-sandbox" for f in frames)
    assert "MLHighErrorRatio" in (frames[0].get("srcdoc") or "")
    # Alertmanager's own view: the active alert and the silence.
    assert "From " + lab.am + "/api/v2" in text
    assert "learner: investigating the drift" in text
    assert 'alertname="MLFeatureDrift"' in text
    # User-influenced text is shown, never run: no element came from it, the title is untouched.
    assert '<img src=x onerror="document.title=1">' in text
    assert not [a for t, a in page.tags if t == "img" or (t == "script")]
    assert page.having("title") is not None and "Alert inbox" in text


def test_inbox_filters_by_channel_and_alert(lab: Lab, tmp_path: Path) -> None:
    needs_chromium()
    lab.post(alert("LLMHallucinationHigh", severity="warning", family="quality"))
    lab.wait_for("slack", "LLMHallucinationHigh")
    emails = Elements(dump_dom(f"{lab.receiver.url}/inbox?channel=email", tmp_path))
    channels = {a.get("data-channel") for t, a in emails.tags if t == "article"}
    assert channels == {"email"}
    only = Elements(dump_dom(f"{lab.receiver.url}/inbox?alert=LLMHallucinationHigh", tmp_path))
    cards = [a for t, a in only.tags if t == "article"]
    assert cards and {a.get("data-channel") for a in cards} == {"slack"}  # warning: Slack only
    with lab.receiver.client() as client:
        assert client.get("/inbox", params={"channel": "pager"}).status_code == 422


def test_alertmanager_absent_or_unreachable_is_a_note(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    for url, note in (("", "No Alertmanager configured"), (unreachable, "did not answer")):
        rec = start_receiver(tmp_path / str(len(url)), RECEIVER_ALERTMANAGER_URL=url)
        try:
            with rec.client() as client:
                page = client.get("/inbox")
            assert page.status_code == 200 and note in page.text
            # No script may run on the page, whatever an alert's text smuggles in.
            policy = page.headers.get("content-security-policy", "")
            assert "default-src 'none'" in policy and "script-src" not in policy
        finally:
            stop(rec)


def test_a_paused_receiver_gets_alertmanagers_retries_once(lab: Lab) -> None:
    """Issue 11 finding 17, reproduced: the receiver stalls, Alertmanager times out and retries, the queued
    copies all arrive when it resumes. Before the fix, each one was a separate notification."""
    os.kill(lab.receiver.proc.pid, signal.SIGSTOP)
    try:
        lab.post(alert("LLMHighLatency", severity="warning", family="latency"))
        time.sleep(25)  # group_interval is 10 s in the lab: two or three flushes, each with retries
    finally:
        os.kill(lab.receiver.proc.pid, signal.SIGCONT)
    time.sleep(3)
    copies = lab.wait_for("slack", "LLMHighLatency")
    assert lab.receiver.metric("receiver_notifications_duplicate_total", channel="slack") >= 1
    assert len([n for n in copies if n["status"] == "firing"]) == 1, copies


def test_every_alerts_runbook_anchor_is_served(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path)
    try:
        with rec.client() as client:
            page = client.get("/runbooks")
    finally:
        stop(rec)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    ids = {a.get("id") for _, a in Elements(page.text).tags if a.get("id")}
    # Every alert of the contract, through the link pattern the generator writes into runbook_url ...
    links = Links()
    assert urlsplit(links.runbook_base).path == "/runbooks"
    for name, contract_alert in alerts_by_name().items():
        fragment = urlsplit(links.runbook(contract_alert)).fragment
        assert fragment in ids, f"{name}: its runbook link #{fragment} is not an anchor of /runbooks"
    # ... and every alert of the rule files Prometheus loads, as written there.
    rules = yaml.safe_load(ALERT_RULES.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts
    for rule in alerts:
        assert rule["alert"].lower() in ids, f"no runbook section for {rule['alert']}"
        fragment = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert fragment in ids, f"{rule['alert']}: runbook_url fragment #{fragment} is not an anchor"


def test_runbooks_render_markdown_and_not_raw_html(tmp_path: Path) -> None:
    source = tmp_path / "runbooks.md"
    source.write_text(
        "# Runbooks\n\n## MLHighLatencyP90\n\n**Meaning.** slow, see [alerts](alerts.md) and [up](#runbooks)"
        "\n\n<script>x()</script>\n\n## Two words\n"
    )
    rec = start_receiver(tmp_path, RECEIVER_RUNBOOKS=str(source))
    try:
        with rec.client() as client:
            html = client.get("/runbooks").text
            source.write_text(source.read_text() + "\n## Added Later\n")
            os.utime(source, (time.time() + 5, time.time() + 5))
            again = client.get("/runbooks").text
    finally:
        stop(rec)
    assert '<h2 id="mlhighlatencyp90">MLHighLatencyP90</h2>' in html
    assert '<h2 id="two-words">' in html and "<strong>Meaning.</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    # A repository-relative link has nothing to resolve to here: text, not a 404.
    assert '<span title="alerts.md">alerts</span>' in html and '<a href="#runbooks">up</a>' in html
    assert 'id="added-later"' in again


def test_slack_mrkdwn_is_escaped_and_links_are_http_only() -> None:
    html = str(mrkdwn("*bold* `code` <http://a/b?x=1&y=2|Runbook> <javascript:alert(1)|x> <b>"))
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert '<a href="http://a/b?x=1&amp;y=2" target="_blank" rel="noopener">Runbook</a>' in html
    assert "javascript:" not in re.findall(r'href="([^"]*)"', html)[0]
    assert "&lt;javascript:alert(1)|x&gt; &lt;b&gt;" in html
    assert anchor("MLHighLatencyP90") == "mlhighlatencyp90" and anchor("What to do?") == "what-to-do"
