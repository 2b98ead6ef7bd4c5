"""Alertmanager configuration as tested code: amtool checks, routes, template renders, and a real Alertmanager
delivering to the lab's real receiver (routing, inhibition, resolved notifications).

Needs `amtool` and `prometheus-alertmanager` (or `alertmanager`). Without them the tests skip locally and
FAIL in CI (`CI` set).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from lab_common.net import free_port
from labctl import wait as waiting
from receiver.parse import alert_names, alert_status

ROOT = Path(__file__).resolve().parents[2]
AM_DIR = ROOT / "alertmanager"
CONFIG = AM_DIR / "alertmanager.yml"
TEMPLATE_GLOB = str(AM_DIR / "templates" / "*.tmpl")
TEMPLATE_DATA = AM_DIR / "tests" / "template_data.json"
ALERTS_FILE = ROOT / "prometheus" / "rules" / "alerts.yml"


def tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"{' / '.join(names)} not on PATH (install Alertmanager: `make tools`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def amtool(*args: str, cwd: Path = AM_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("amtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


# ---------------------------------------------------------------- static checks


def test_amtool_check_config(tmp_path: Path) -> None:
    # From another directory: templates resolve relative to the config file.
    result = amtool("check-config", str(CONFIG), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 1 templates" in result.stdout
    assert f" - {len(config()['inhibit_rules'])} inhibit rules" in result.stdout


def test_no_secret_in_the_config() -> None:
    cfg = config()
    slack = [c for r in cfg["receivers"] for c in r.get("slack_configs", [])]
    assert slack, "a Slack receiver"
    for item in slack:
        assert "api_url" not in item, "the webhook URL is a secret: api_url_file only"
        assert item["api_url_file"] == "secrets/slack_webhook_url"
        assert item["send_resolved"] is True
        assert "slack.lab.text" in item["text"], "the default Slack text is empty"
    for item in (c for r in cfg["receivers"] for c in r.get("email_configs", [])):
        assert "auth_password" not in item
        assert item["send_resolved"] is True
    assert "smtp_auth_password" not in cfg["global"]
    assert cfg["global"]["smtp_smarthost"] == "127.0.0.1:2525"
    assert cfg["global"]["smtp_require_tls"] is False
    settings = [line for line in CONFIG.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in settings if "${" in line], (
        "Alertmanager does not expand environment variables"
    )


def test_secrets_directory_is_ignored_and_the_default_is_the_local_receiver() -> None:
    assert (AM_DIR / "slack_webhook_url.default").read_text().strip() == "http://127.0.0.1:9099/slack"
    assert (AM_DIR / "slack_webhook_url.compose").read_text().strip() == "http://alert-receiver:9099/slack"
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("slack_webhook_url", "smtp_password"):
        ignored = subprocess.run([git, "check-ignore", "-q", f"alertmanager/secrets/{name}"], cwd=ROOT)
        assert ignored.returncode == 0, f"alertmanager/secrets/{name} must be gitignored"
    kept = subprocess.run([git, "check-ignore", "-q", "alertmanager/secrets/.gitignore"], cwd=ROOT)
    assert kept.returncode == 1, "the .gitignore itself is committed"


def test_grouping_and_lab_timing() -> None:
    route = config()["route"]
    assert route["group_by"] == ["alertname", "service", "severity"]
    assert route["group_wait"] == "1s"
    assert route["group_interval"] == "10s"
    assert route["repeat_interval"] == "1h"


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "service=ml_api", "alertname=MLHighErrorRatio"], "slack,email"),
        (["severity=critical", "service=rag_api", "alertname=LLMHallucinationHigh"], "slack,email"),
        (["severity=warning", "service=ml_api", "alertname=MLHighLatencyP90"], "slack"),
        (["severity=warning", "service=rag_api", "alertname=LLMRelevanceLow"], "slack"),
        (
            ["severity=critical", "service=rag_api", "alertname=LLMPIILeak", "team=security"],
            "security-slack,security-email",
        ),
        (
            ["severity=warning", "service=rag_api", "alertname=LLMPromptInjectionShareHigh", "team=security"],
            "security-slack,security-email",
        ),
        (["alertname=Watchdog"], "slack"),  # unlabelled: root route
        (["severity=info", "alertname=Something"], "slack"),
    ],
)
def test_routes(labels: list[str], receivers: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receivers}", *labels
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_route_verification_can_fail() -> None:
    """The check above means something: a warning is NOT routed to email."""
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        "--verify.receivers=slack,email",
        "severity=warning",
        "service=ml_api",
        "alertname=MLFeatureDrift",
    )
    assert result.returncode != 0


def test_every_alert_rule_routes_by_its_severity() -> None:
    rules = [r for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        severity = rule["labels"]["severity"]
        expected = "slack,email" if severity == "critical" else "slack"
        if rule["labels"].get("team") == "security":
            expected = "security-slack,security-email"
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]
        result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
        assert result.stdout.strip() == expected, (rule["alert"], result.stdout, result.stderr)


# ---------------------------------------------------------------- templates


def render(name: str, kind: str = "text") -> str:
    result = amtool(
        "template",
        "render",
        f"--template.glob={TEMPLATE_GLOB}",
        f"--template.data={TEMPLATE_DATA}",
        f"--template.type={kind}",
        f"--template.text={{{{ template {json.dumps(name)} . }}}}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_slack_title() -> None:
    assert render("slack.lab.title").strip() == "[FIRING:1] MLFeatureDrift (ml_api warning)"
    assert render("slack.lab.color").strip() == "warning"
    assert render("slack.lab.titlelink").strip() == "http://localhost:3000/d/ml-service"


@pytest.mark.parametrize(
    ("name", "kind"), [("slack.lab.text", "text"), ("email.lab.text", "text"), ("email.lab.html", "html")]
)
def test_bodies_list_every_alert_firing_and_resolved(name: str, kind: str) -> None:
    data = json.loads(TEMPLATE_DATA.read_text())
    text = render(name, kind)
    assert text.strip(), "an empty message is what the default Slack template sends"
    for alert in data["alerts"]:
        assert alert["annotations"]["summary"] in text
        assert alert["annotations"]["description"] in text  # carries the value (drift score 0.4217 ...)
        assert f"feature={alert['labels']['feature']}" in text
    assert text.count(data["alerts"][0]["annotations"]["runbook_url"]) == 2
    assert text.count("http://localhost:3000/d/ml-service") == 2
    assert "FIRING" in text and "RESOLVED" in text
    assert text.index("ticket_length") < text.index("customer_tier"), "firing alerts first"
    assert "2026-01-02 09:58:30 UTC" in text, "a resolved alert shows when it ended"
    # What the lab's receiver (and a human) reads from it.
    assert alert_names(text) == ["MLFeatureDrift"]
    assert alert_status(text) == "mixed"


def test_identity_names_the_group_and_each_alert_with_its_start() -> None:
    """What the receiver de-duplicates on: the same alert firing again has a new start time, so a new
    identity, even when the resolution in between was never sent (Alertmanager crashed)."""
    assert render("lab.identity").strip() == (
        'slack:{alertname="MLFeatureDrift",service="ml_api",severity="warning"}'
        "|firing=a1@1767348000000|resolved=b2@1767347400000"
    )


def test_email_subject() -> None:
    assert render("email.lab.subject").strip() == "[FIRING:1] MLFeatureDrift (ml_api warning)"


def test_with_a_web_ui_the_alerts_link_is_alertmanagers_alerts_page() -> None:
    """The committed links.tmpl is compose's and Kubernetes' (upstream images, with the UI); the native lab
    renders its own (test_native_notifications_link_to_the_receivers_inbox)."""
    data = json.loads(TEMPLATE_DATA.read_text())
    ui = f"{data['externalURL']}/#/alerts"
    assert render("lab.alerts.url").strip() == ui
    assert f"\nAlertmanager: {ui}\n" in render("email.lab.text")
    assert f'<a href="{ui}">Alertmanager</a>' in render("email.lab.html", "html")


# ---------------------------------------------------------------- a real Alertmanager and the real receiver


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    try:
        waiting.wait_http(url, timeout=timeout, process=proc, every=0.1, what=what)
    except waiting.ProcessExited as exc:
        raise RuntimeError(f"{exc}: {proc.stdout.read() if proc.stdout else ''}") from None


class Lab:
    def __init__(self, am_url: str, receiver_url: str, start_alertmanager) -> None:
        self.am = am_url
        self.receiver = receiver_url
        self._start_alertmanager = start_alertmanager
        self.am_proc: subprocess.Popen = start_alertmanager()

    def crash_alertmanager(self) -> None:
        """SIGKILL, then start it again on the same port and data directory: what a crash (or the e2e's
        monitoring-down test) does. Its alerts are in memory only, so they are gone; so is any notification
        log written since its last snapshot."""
        self.am_proc.kill()
        self.am_proc.wait(timeout=10)
        self.am_proc = self._start_alertmanager()

    def post(self, *alerts: dict) -> None:
        response = httpx.post(f"{self.am}/api/v2/alerts", json=list(alerts), timeout=5)
        assert response.status_code == 200, response.text

    def alerts(self) -> dict[str, dict]:
        items = httpx.get(f"{self.am}/api/v2/alerts", timeout=5).json()
        return {f"{a['labels']['alertname']}/{a['labels'].get('service')}": a for a in items}

    def notifications(self, channel: str) -> list[dict]:
        response = httpx.get(f"{self.receiver}/notifications", params={"channel": channel}, timeout=5)
        return response.json()["notifications"]

    def wait_for(self, channel: str, predicate, timeout: float = 30) -> list[dict]:
        return waiting.wait_until(
            lambda: [n for n in self.notifications(channel) if predicate(n)],
            timeout=timeout,
            every=0.2,
            what=f"a matching {channel} notification",
            detail=lambda: str(self.notifications(channel)),
        )


@contextlib.contextmanager
def running_lab(tmp: Path) -> Iterator[Lab]:
    """The committed config, started like the runner does (cwd = its directory), aimed at a receiver on free
    ports: only the SMTP port and the webhook file differ from the real set-up."""
    tool("amtool")
    binary = tool("prometheus-alertmanager", "alertmanager")
    http_port, smtp_port, am_port = free_port(), free_port(), free_port()

    receiver = subprocess.Popen(
        [sys.executable, "-m", "receiver"],
        cwd=ROOT,
        env={
            **os.environ,
            "RECEIVER_HOST": "127.0.0.1",
            "RECEIVER_HTTP_PORT": str(http_port),
            "RECEIVER_SMTP_PORT": str(smtp_port),
            "RECEIVER_LOG": str(tmp / "notifications.jsonl"),
            "RECEIVER_ECHO": "false",
            "LAB_PROFILE": "true",  # the fail knob is a lab fault
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    receiver_url = f"http://127.0.0.1:{http_port}"

    conf_dir = tmp / "alertmanager"
    shutil.copytree(AM_DIR, conf_dir, ignore=shutil.ignore_patterns("secrets"))
    text = CONFIG.read_text()
    assert text.count("smtp_smarthost: 127.0.0.1:2525") == 1
    (conf_dir / "alertmanager.yml").write_text(
        text.replace("smtp_smarthost: 127.0.0.1:2525", f"smtp_smarthost: 127.0.0.1:{smtp_port}")
    )
    (conf_dir / "secrets").mkdir()
    (conf_dir / "secrets" / "slack_webhook_url").write_text(f"{receiver_url}/slack\n")
    am_url = f"http://127.0.0.1:{am_port}"

    def start_alertmanager() -> subprocess.Popen:
        am = subprocess.Popen(
            [
                binary,
                "--config.file=alertmanager.yml",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                f"--web.external-url=http://127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            cwd=conf_dir,  # api_url_file is relative to the working directory (measured with 0.25)
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_http(f"{am_url}/-/ready", am, "alertmanager")
        except BaseException:
            waiting.stop_process(am)
            raise
        return am

    lab: Lab | None = None
    try:
        wait_http(f"{receiver_url}/health", receiver, "receiver")
        lab = Lab(am_url, receiver_url, start_alertmanager)
        yield lab
    finally:
        if lab is not None:
            waiting.stop_process(lab.am_proc)
        waiting.stop_process(receiver)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("am")) as lab:
        yield lab


def alert(name: str, service: str, severity: str, family: str, ends_in: float = 300, **labels: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "service": service, "severity": severity, "family": family, **labels},
        "annotations": {
            "summary": f"{name} on {service}",
            "description": f"{name} measured value 42",
            "runbook_url": f"http://localhost:9099/runbooks#{name.lower()}",
            "dashboard_url": "http://localhost:3000/d/ml-service",
        },
        "startsAt": (now - timedelta(seconds=45)).isoformat(),  # like Prometheus: pending since `for` ago
        "endsAt": (now + timedelta(seconds=ends_in)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


def test_routing_inhibition_and_resolution_with_a_real_alertmanager(lab: Lab) -> None:
    # The criticals first, as the rules' `for` (30s vs 45s) guarantees in the lab: Alertmanager flushes a
    # new group at once (startsAt older than group_wait): a warning in the same batch may beat the inhibitor.
    lab.post(
        alert("MLHighLatencyP99", "ml_api", "critical", "latency"),
        alert("TargetDown", "rag_api", "critical", "availability", job="rag-api", instance="127.0.0.1:8001"),
    )
    lab.wait_for("slack", lambda n: "TargetDown" in n["alerts"])
    lab.post(
        alert("MLHighLatencyP90", "ml_api", "warning", "latency"),  # muted: critical, same family + service
        alert("MLFeatureDrift", "ml_api", "warning", "drift", feature="ticket_length"),  # no critical drift
        alert("LLMHallucinationHigh", "rag_api", "critical", "quality"),  # muted by TargetDown (same service)
        alert("LLMHighLatency", "rag_api", "warning", "latency"),  # muted by TargetDown
        alert("TriageDegraded", "ml_api", "warning", "triage"),  # muted by rag_api's TargetDown
    )
    # Alertmanager computes inhibition when it is asked; give it the second it needs to ingest.
    with contextlib.suppress(waiting.WaitTimeout):
        waiting.wait_until(lambda: len(lab.alerts()) == 7, timeout=10, every=0.2)
    state = {key: a["status"] for key, a in lab.alerts().items()}
    suppressed = {key for key, status in state.items() if status["state"] == "suppressed"}
    assert suppressed == {
        "MLHighLatencyP90/ml_api",
        "LLMHallucinationHigh/rag_api",
        "LLMHighLatency/rag_api",
        "TriageDegraded/ml_api",
    }
    assert all(state[key]["inhibitedBy"] for key in suppressed)
    assert state["MLFeatureDrift/ml_api"]["state"] == "active"
    inhibited = httpx.get(
        f"{lab.am}/api/v2/alerts", params={"active": "false", "inhibited": "true"}, timeout=5
    )
    assert {a["labels"]["alertname"] for a in inhibited.json()} == {
        "MLHighLatencyP90",
        "LLMHallucinationHigh",
        "LLMHighLatency",
        "TriageDegraded",
    }

    # Critical -> Slack and email; warning -> Slack only; with our templates' text, not an empty message.
    lab.wait_for("email", lambda n: "MLHighLatencyP99" in n["alerts"])
    lab.wait_for("email", lambda n: "TargetDown" in n["alerts"])
    slack_p99 = lab.wait_for("slack", lambda n: "MLHighLatencyP99" in n["alerts"])[0]
    lab.wait_for("slack", lambda n: "MLFeatureDrift" in n["alerts"])
    lab.wait_for("slack", lambda n: "TargetDown" in n["alerts"])
    payload = slack_p99["payload"]["attachments"][0]
    assert payload["title"] == "[FIRING:1] MLHighLatencyP99 (ml_api critical)"
    assert payload["color"] == "danger"
    assert "MLHighLatencyP99 measured value 42" in payload["text"]
    assert "/runbooks#mlhighlatencyp99|Runbook>" in payload["text"]
    assert slack_p99["slack_channel"] == "#observability-lab"
    email = lab.wait_for("email", lambda n: "MLHighLatencyP99" in n["alerts"])[0]
    assert email["subject"] == "[FIRING:1] MLHighLatencyP99 (ml_api critical)"
    assert "MLHighLatencyP99 measured value 42" in email["html"]
    assert "MLHighLatencyP99 measured value 42" in email["body"]

    # Resolve the warning: send_resolved delivers a RESOLVED message (after group_interval, 10 s).
    lab.post(alert("MLFeatureDrift", "ml_api", "warning", "drift", ends_in=-1, feature="ticket_length"))
    resolved = lab.wait_for("slack", lambda n: "MLFeatureDrift" in n["alerts"] and n["status"] == "resolved")
    assert resolved[0]["payload"]["attachments"][0]["title"] == "[RESOLVED] MLFeatureDrift (ml_api warning)"
    assert resolved[0]["payload"]["attachments"][0]["color"] == "good"

    # Nothing muted was ever delivered, and warnings never went to email.
    slack_names = {name for n in lab.notifications("slack") for name in n["alerts"]}
    email_names = {name for n in lab.notifications("email") for name in n["alerts"]}
    muted = {"MLHighLatencyP90", "LLMHallucinationHigh", "LLMHighLatency", "TriageDegraded"}
    assert slack_names == {"MLHighLatencyP99", "MLFeatureDrift", "TargetDown"}
    assert email_names == {"MLHighLatencyP99", "TargetDown"}
    assert not (slack_names | email_names) & muted


def test_slack_failing_is_retried_and_email_still_delivers(lab: Lab) -> None:
    """The Slack stand-in answers 500 for a while: the email route delivers regardless, Alertmanager counts
    the failures and retries, and Slack gets the alert once it answers again."""
    fail = httpx.post(f"{lab.receiver}/admin/fail", json={"seconds": 6}, timeout=5)
    assert fail.status_code == 200, fail.text
    lab.post(alert("MLDataDriftDetected", "ml_api", "critical", "drift"))
    email = lab.wait_for("email", lambda n: "MLDataDriftDetected" in n["alerts"], timeout=15)
    assert email, "the email route must not wait for Slack"
    assert not [n for n in lab.notifications("slack") if "MLDataDriftDetected" in n["alerts"]]
    assert httpx.get(f"{lab.receiver}/admin/fail", timeout=5).json()["rejected"] >= 1
    # Alertmanager counts every failed attempt (its retries included) per integration.
    metrics = httpx.get(f"{lab.am}/metrics", timeout=5).text
    failed = [
        line
        for line in metrics.splitlines()
        if line.startswith('alertmanager_notification_requests_failed_total{integration="slack"')
    ]
    assert failed and float(failed[0].rsplit(" ", 1)[1]) >= 1, failed
    # Retried with backoff until the receiver answers 200 again.
    lab.wait_for("slack", lambda n: "MLDataDriftDetected" in n["alerts"], timeout=60)


def test_security_alerts_reach_their_own_channel_and_the_canary_mutes_the_injection(lab: Lab) -> None:
    """Security alerts of any severity go to #lab-security and the security mailbox (not the ops channel);
    a leaked canary mutes the prompt-injection alert of the same service, not of another."""
    security = {"team": "security"}
    lab.post(alert("LLMCanaryLeak", "rag_api", "critical", "prompt_leak", **security))
    lab.wait_for("slack", lambda n: "LLMCanaryLeak" in n["alerts"])
    lab.post(
        alert("LLMPromptInjectionShareHigh", "rag_api", "warning", "injection", **security),  # muted
        alert(
            "LLMPromptInjectionShareHigh", "other_llm", "warning", "injection", **security
        ),  # other service
    )

    def injection_states() -> dict[str, str]:
        return {key: a["status"]["state"] for key, a in lab.alerts().items() if "PromptInjection" in key}

    with contextlib.suppress(waiting.WaitTimeout):
        waiting.wait_until(lambda: len(injection_states()) == 2, timeout=10, every=0.2)
    assert injection_states() == {
        "LLMPromptInjectionShareHigh/rag_api": "suppressed",
        "LLMPromptInjectionShareHigh/other_llm": "active",
    }
    canary = lab.wait_for("slack", lambda n: "LLMCanaryLeak" in n["alerts"])[0]
    assert canary["slack_channel"] == "#lab-security"
    email = lab.wait_for("email", lambda n: "LLMCanaryLeak" in n["alerts"])[0]
    assert "security@observability-lab.local" in json.dumps(email)
    # The warning of the other service: security channel and mailbox as well.
    lab.wait_for("email", lambda n: "LLMPromptInjectionShareHigh" in n["alerts"])
    injection = lab.wait_for("slack", lambda n: "LLMPromptInjectionShareHigh" in n["alerts"])
    assert all(n["slack_channel"] == "#lab-security" for n in injection)
    assert len(injection) == 1  # only other_llm's


def test_a_stuck_evaluator_mutes_the_failures_and_backlog_it_causes(lab: Lab) -> None:
    """LLMEvaluationStuck is the cause, failures and backlog its effects on the same service: one message.
    The same effects on another service still notify. (Services of their own: the routing test's rag_api
    TargetDown mutes every evaluation alert of rag_api.)"""
    lab.post(alert("LLMEvaluationStuck", "rag_b", "warning", "evaluation"))
    lab.wait_for("slack", lambda n: "LLMEvaluationStuck" in n["alerts"])
    lab.post(
        alert("LLMEvaluationFailures", "rag_b", "warning", "evaluation"),  # muted
        alert("LLMEvaluationBacklog", "rag_b", "warning", "evaluation"),  # muted
        alert("LLMEvaluationBacklog", "rag_c", "warning", "evaluation"),  # another service
    )

    def evaluation_states() -> dict[str, str]:
        return {
            key: a["status"]["state"]
            for key, a in lab.alerts().items()
            if key.startswith(("LLMEvaluationFailures/", "LLMEvaluationBacklog/"))
        }

    with contextlib.suppress(waiting.WaitTimeout):
        waiting.wait_until(lambda: len(evaluation_states()) == 3, timeout=10, every=0.2)
    assert evaluation_states() == {
        "LLMEvaluationFailures/rag_b": "suppressed",
        "LLMEvaluationBacklog/rag_b": "suppressed",
        "LLMEvaluationBacklog/rag_c": "active",
    }
    backlog = lab.wait_for("slack", lambda n: "LLMEvaluationBacklog" in n["alerts"])
    assert len(backlog) == 1 and "rag_c" in json.dumps(backlog[0]["payload"]), backlog
    assert not [n for n in lab.notifications("slack") if "LLMEvaluationFailures" in n["alerts"]]


def test_an_alert_firing_again_after_an_alertmanager_crash_is_delivered_again(tmp_path: Path) -> None:
    """Alertmanager holds its alerts in memory only: a crash while an alert fires loses it, and its
    resolution is never notified. When the alert fires again (a new start time), that firing must reach
    Slack and email: it is news, not a retry of the first one. (After the e2e's monitoring-down test
    crashed Alertmanager, the receiver answered such a firing `ok` as a duplicate and dropped it.)"""
    with running_lab(tmp_path) as lab:
        first = alert("LLMPIILeak", "rag_api", "critical", "pii_leak", team="security")
        lab.post(first)
        for channel in ("slack", "email"):
            lab.wait_for(channel, lambda n: "LLMPIILeak" in n["alerts"])
        lab.crash_alertmanager()
        # What Prometheus sends next: the resolution (to an Alertmanager that has never notified this alert,
        # so nothing is sent), then the new firing, which starts after the first one ended.
        ended = datetime.now(UTC)
        lab.post({**first, "endsAt": ended.isoformat()})
        again = alert("LLMPIILeak", "rag_api", "critical", "pii_leak", team="security")
        lab.post({**again, "startsAt": (ended + timedelta(seconds=1)).isoformat()})

        def firings(channel: str) -> list[dict]:
            return [n for n in lab.notifications(channel) if "LLMPIILeak" in n["alerts"]]

        for channel in ("slack", "email"):
            waiting.wait_until(
                lambda channel=channel: len(firings(channel)) == 2,
                timeout=30,
                every=0.2,
                what=f"the second firing on {channel}",
                detail=lambda channel=channel: f"{firings(channel)}\n{receiver_duplicates(lab)}",
            )
            assert [n["status"] for n in firings(channel)] == ["firing", "firing"]
        assert receiver_duplicates(lab) == {"slack": 0.0, "email": 0.0}


def receiver_duplicates(lab: Lab) -> dict[str, float]:
    """The receiver's receiver_notifications_duplicate_total, per channel."""
    found = {}
    for line in httpx.get(f"{lab.receiver}/metrics", timeout=5).text.splitlines():
        if line.startswith("receiver_notifications_duplicate_total{"):
            channel = line.split('channel="', 1)[1].split('"', 1)[0]
            found[channel] = float(line.rsplit(" ", 1)[1])
    return found


def test_native_notifications_link_to_the_receivers_inbox(tmp_path: Path) -> None:
    """Debian's Alertmanager has no web UI, so the native lab's notifications (labctl's rendered config and
    templates, a real Alertmanager, the real receiver) send their reader to the receiver's inbox page for the
    alert: the email's line and footer, and Slack's title link when the alerts share no dashboard."""
    from labctl import config as cfg
    from labctl.config import Ports
    from tests.support.receiver import start_receiver, stop

    binary = tool("prometheus-alertmanager", "alertmanager")
    am_port = free_port()
    receiver = start_receiver(tmp_path, RECEIVER_ALERTMANAGER_URL=f"http://127.0.0.1:{am_port}")
    http_port = int(receiver.url.rsplit(":", 1)[1])
    ports = Ports(receiver_http=http_port, receiver_smtp=receiver.smtp_port, alertmanager=am_port)
    rendered = cfg.render_alertmanager_config(
        CONFIG,
        tmp_path / "run" / "alertmanager.yml",
        ports=ports,
        slack_url_file=cfg.render_slack_url_file(
            AM_DIR / "slack_webhook_url.default", tmp_path / "url", ports
        ),
        templates_dir=tmp_path / "run" / "templates",
    )
    am_url = f"http://127.0.0.1:{am_port}"
    am = subprocess.Popen(
        [
            binary,
            f"--config.file={rendered}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            f"--web.external-url=http://localhost:{am_port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"{am_url}/-/ready", am, "alertmanager")
        lab = Lab.__new__(Lab)
        lab.am, lab.receiver = am_url, receiver.url
        firing = alert("MLDataDriftDetected", "ml_api", "critical", "drift")
        del firing["annotations"]["dashboard_url"]  # no common dashboard: Slack's title link falls back
        lab.post(firing)
        slack = lab.wait_for("slack", lambda n: "MLDataDriftDetected" in n["alerts"])[0]
        email = lab.wait_for("email", lambda n: "MLDataDriftDetected" in n["alerts"])[0]
    finally:
        waiting.stop_process(am)
    inbox = f"http://localhost:{http_port}/inbox?alert=MLDataDriftDetected"
    try:
        assert slack["payload"]["attachments"][0]["title_link"] == inbox
        assert f"Alerts in the lab's inbox: {inbox}" in email["body"].splitlines()
        assert f'<a href="{inbox}">Alerts in the lab' in email["html"]
        assert f"localhost:{am_port}" not in email["body"] + email["html"], (
            "no link to a UI that is not there"
        )
        page = httpx.get(inbox.replace("localhost", "127.0.0.1"), timeout=10)
        assert page.status_code == 200 and "MLDataDriftDetected" in page.text
    finally:
        stop(receiver)
