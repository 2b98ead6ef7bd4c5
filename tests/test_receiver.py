"""The alert receiver, started for real (`python -m receiver`) on free ports: Slack webhook, SMTP, fault."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from lab_common.net import free_port
from receiver.parse import alert_names, alert_status, slack_texts

ROOT = Path(__file__).resolve().parents[1]

# What Alertmanager's default Slack template sends for one firing alert.
AM_SLACK = {
    "channel": "#lab-alerts",
    "username": "Alertmanager",
    "attachments": [
        {
            "title": "[FIRING:1] MLHighErrorRate (ml-api critical)",
            "title_link": "http://127.0.0.1:9093/#/alerts?receiver=slack",
            "text": "*Alert:* MLHighErrorRate\n*Description:* 5xx share above 5% for 2m",
            "fallback": "[FIRING:1] MLHighErrorRate | http://127.0.0.1:9093",
            "color": "danger",
            "mrkdwn_in": ["fallback", "pretext", "text"],
        }
    ],
}


@dataclass
class Receiver:
    url: str
    smtp_port: int
    log: Path
    proc: subprocess.Popen

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=5)

    def send_mail(self, subject: str, body: str, to: str = "oncall@lab.local") -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = "alertmanager@lab.local"
        message["To"] = to
        message.set_content(body)
        message.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=5) as smtp:
            smtp.send_message(message)


def start_receiver(tmp_path: Path, **env: str) -> Receiver:
    http_port, smtp_port = free_port(), free_port()
    log = tmp_path / "notifications.jsonl"
    environ = {
        **os.environ,
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_HTTP_PORT": str(http_port),
        "RECEIVER_SMTP_PORT": str(smtp_port),
        "RECEIVER_LOG": str(log),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Receiver(url, smtp_port, log, proc)
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("receiver did not become healthy within 20 s")


def stop(receiver: Receiver) -> str:
    receiver.proc.terminate()
    try:
        out, _ = receiver.proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        receiver.proc.kill()
        out, _ = receiver.proc.communicate()
    return out


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = start_receiver(tmp_path)
    yield rec
    stop(rec)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_slack_webhook_is_recorded_listed_and_logged(receiver: Receiver) -> None:
    with receiver.client() as client:
        response = client.post("/slack", json=AM_SLACK)
        assert response.status_code == 200
        assert response.text == "ok"
        # A real hooks URL shape works too, and so does Slack's form encoding.
        hook = client.post("/services/T000/B000/XXXX", json={"text": "[RESOLVED] RAGSlowAnswers"})
        assert (hook.status_code, hook.text) == (200, "ok")
        form = client.post("/slack", data={"payload": json.dumps({"text": "alertname=MLDatasetDrift"})})
        assert form.status_code == 200

        listed = client.get("/notifications", params={"channel": "slack"}).json()
    assert listed["count"] == 3
    first, second, third = listed["notifications"]
    assert first["channel"] == "slack"
    assert first["slack_channel"] == "#lab-alerts"
    assert first["alerts"] == ["MLHighErrorRate"]
    assert first["status"] == "firing"
    assert first["payload"] == AM_SLACK
    assert second["path"] == "/services/T000/B000/XXXX"
    assert (second["alerts"], second["status"]) == (["RAGSlowAnswers"], "resolved")
    assert third["alerts"] == ["MLDatasetDrift"]

    logged = jsonl(receiver.log)
    assert [item["alerts"] for item in logged] == [
        ["MLHighErrorRate"],
        ["RAGSlowAnswers"],
        ["MLDatasetDrift"],
    ]
    assert all(item["channel"] == "slack" and item["received_at"] for item in logged)


def test_bad_slack_payloads_are_refused_like_slack(receiver: Receiver) -> None:
    with receiver.client() as client:
        bad = client.post("/slack", content=b"{not json", headers={"content-type": "application/json"})
        assert (bad.status_code, bad.text) == (400, "invalid_payload")
        not_object = client.post("/slack", json=["a", "list"])
        assert (not_object.status_code, not_object.text) == (400, "invalid_payload")
        empty = client.post("/slack", json={"channel": "#x"})
        assert (empty.status_code, empty.text) == (400, "no_text")
        assert client.get("/notifications").json()["count"] == 0
    assert not receiver.log.exists() or receiver.log.read_text() == ""


def test_email_is_parsed_and_recorded(receiver: Receiver) -> None:
    receiver.send_mail("[FIRING:2] RAGHallucinationRate (rag-api warning)", "Groundedness p50 below 0.6")
    with receiver.client() as client:
        emails = client.get("/notifications", params={"channel": "email"}).json()["notifications"]
        assert client.get("/notifications", params={"channel": "slack"}).json()["count"] == 0
    assert len(emails) == 1
    mail = emails[0]
    assert mail["subject"] == "[FIRING:2] RAGHallucinationRate (rag-api warning)"
    assert mail["to"] == ["oncall@lab.local"]
    assert mail["from"] == "alertmanager@lab.local"
    assert "Groundedness p50 below 0.6" in mail["body"]
    assert "<p>Groundedness p50 below 0.6</p>" in mail["html"]
    assert (mail["alerts"], mail["status"]) == (["RAGHallucinationRate"], "firing")
    assert jsonl(receiver.log)[0]["subject"] == mail["subject"]


def test_since_filter_and_clear(receiver: Receiver) -> None:
    with receiver.client() as client:
        client.post("/slack", json={"text": "[FIRING:1] Early"})
        time.sleep(0.05)
        cut = time.time()
        time.sleep(0.05)
        client.post("/slack", json={"text": "[FIRING:1] Late"})

        after = client.get("/notifications", params={"since": str(cut)}).json()["notifications"]
        assert [n["alerts"] for n in after] == [["Late"]]
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut - 3600)) + "Z"
        assert client.get("/notifications", params={"since": iso}).json()["count"] == 2
        assert client.get("/notifications", params={"since": "yesterday"}).status_code == 422
        assert client.get("/notifications", params={"channel": "pager"}).status_code == 422

        assert client.delete("/notifications").json() == {"cleared": 2}
        assert client.get("/notifications").json()["count"] == 0
    assert receiver.log.read_text() == ""


def test_fail_window_answers_500_while_email_still_delivers(receiver: Receiver) -> None:
    with receiver.client() as client:
        assert client.post("/admin/fail", json={"seconds": 3}).json()["failing_for_seconds"] > 0
        failed = client.post("/slack", json={"text": "[FIRING:1] DuringFault"})
        assert failed.status_code == 500
        receiver.send_mail("[FIRING:1] DuringFault", "mail goes through while Slack fails")
        assert client.get("/admin/fail").json()["rejected"] == 1

        deadline = time.monotonic() + 10
        while client.get("/admin/fail").json()["failing_for_seconds"] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        retried = client.post("/slack", json={"text": "[FIRING:1] DuringFault"})
        assert (retried.status_code, retried.text) == (200, "ok")

        channels = [n["channel"] for n in client.get("/notifications").json()["notifications"]]
    # The refused webhook call is not a notification; the mail and the retry are.
    assert channels == ["email", "slack"]
    with receiver.client() as client:
        assert client.post("/admin/fail", json={"seconds": -1}).status_code == 422


def test_fail_from_env_history_survives_restart_and_stdout_blocks(tmp_path: Path) -> None:
    rec = start_receiver(tmp_path, RECEIVER_FAIL_SECONDS="60")
    try:
        with rec.client() as client:
            assert client.post("/slack", json=AM_SLACK).status_code == 500
            client.post("/admin/fail", json={"seconds": 0})
            assert client.post("/slack", json=AM_SLACK).status_code == 200
    finally:
        out = stop(rec)
    assert "slack /slack channel=#lab-alerts" in out
    assert "FIRING   MLHighErrorRate" in out

    again = start_receiver(tmp_path)
    try:
        with again.client() as client:
            kept = client.get("/notifications").json()["notifications"]
        assert [n["alerts"] for n in kept] == [["MLHighErrorRate"]]
    finally:
        stop(again)


def test_alert_name_parsing() -> None:
    assert alert_names("[FIRING:3] A_b (x)", "[RESOLVED] C:d") == ["A_b", "C:d"]
    assert alert_names('labels: alertname="MLDrift", severity=warning') == ["MLDrift"]
    assert alert_names("nothing here") == []
    assert alert_status("[FIRING:1] A", "[RESOLVED] B") == "mixed"
    assert alert_status("no status") is None
    blocks = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "[FIRING:1] FromBlocks"}}]}
    assert alert_names(*slack_texts(blocks)) == ["FromBlocks"]
