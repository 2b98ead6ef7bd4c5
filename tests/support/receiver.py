"""The alert receiver started for real (`python -m receiver`) on free ports, and what tests do with it."""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from lab_common.net import free_port

ROOT = Path(__file__).resolve().parents[2]

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

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, headers=headers)

    def send_mail(
        self, subject: str, body: str, to: str = "oncall@lab.local", html: str | None = None
    ) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = "alertmanager@lab.local"
        message["To"] = to
        message.set_content(body)
        message.add_alternative(html or f"<html><body><p>{body}</p></body></html>", subtype="html")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=5) as smtp:
            smtp.send_message(message)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the receiver's /metrics (0 when the series does not exist yet)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$")
        for line in text.splitlines():
            match = pattern.match(line)
            if match and ",".join(sorted((match.group(1) or "").split(","))).strip(",") == wanted:
                return float(match.group(2))
        return 0.0


def start_receiver(tmp_path: Path, **env: str) -> Receiver:
    """A real `python -m receiver`; started again on other ports when a port was taken meanwhile."""
    for attempt in range(3):
        try:
            return _start_receiver(tmp_path, **env)
        except PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    """free_port() gave a port that another process (or the other listener) bound first."""


def _start_receiver(tmp_path: Path, **env: str) -> Receiver:
    http_port = free_port()
    smtp_port = free_port()
    while smtp_port == http_port:  # nothing holds a free port until the receiver binds it
        smtp_port = free_port()
    log = tmp_path / "notifications.jsonl"
    environ = {
        **os.environ,
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_HTTP_PORT": str(http_port),
        "RECEIVER_SMTP_PORT": str(smtp_port),
        "RECEIVER_LOG": str(log),
        "RECEIVER_ALERTMANAGER_URL": "",
        "LAB_PROFILE": "true",
        "ADMIN_TOKEN": "",
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
            output = proc.stdout.read() if proc.stdout else ""
            if "address already in use" in output:
                raise PortTaken(output)
            raise RuntimeError(f"receiver exited early:\n{output}")
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


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def dump_dom(url: str, tmp_path: Path, timeout: float = 90) -> str:
    """The page's DOM after load, from headless Chromium (scripts, if the page had any, would have run)."""
    browser = chromium()
    assert browser, "chromium is not installed"
    profile = tmp_path / f"chromium-{time.monotonic_ns()}"
    result = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
            "--virtual-time-budget=3000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def needs_chromium() -> None:
    if chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (make browser installs it)")
        pytest.skip("chromium not installed (sudo apt-get install -y chromium, or `make browser` as root)")


class Elements(HTMLParser):
    """Start tags with their attributes, and the page's text, from a DOM dump."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]
