"""`labctl status`: is each process up, are Prometheus' targets up, what fires, what has been notified."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from labctl.config import ROOT, Ports

# The lab's state directory (LABCTL_VAR moves it: a second lab beside a running one, on other ports).
VAR = Path(os.environ.get("LABCTL_VAR") or ROOT / "var").resolve()
# Where `labctl up` records its pid and ports (LABCTL_STATE_FILE moves it, e.g. for tests).
STATE_FILE = Path(os.environ.get("LABCTL_STATE_FILE") or VAR / "labctl.json")


def read_state(path: Path = STATE_FILE) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def health_urls(ports: Ports, with_grafana: bool) -> dict[str, tuple[str, str]]:
    """name -> (health URL, where a person looks)."""
    h = "127.0.0.1"
    urls = {
        "ml_api": (f"http://{h}:{ports.ml_api}/ready", f"http://localhost:{ports.ml_api}/docs"),
        "rag_api": (f"http://{h}:{ports.rag_api}/ready", f"http://localhost:{ports.rag_api}/docs"),
        "receiver": (
            f"http://{h}:{ports.receiver_http}/health",
            f"http://localhost:{ports.receiver_http}/notifications",
        ),
        "prometheus": (f"http://{h}:{ports.prometheus}/-/ready", f"http://localhost:{ports.prometheus}"),
        "alertmanager": (
            f"http://{h}:{ports.alertmanager}/-/ready",
            f"http://localhost:{ports.alertmanager}",
        ),
    }
    if with_grafana:
        urls["grafana"] = (f"http://{h}:{ports.grafana}/api/health", f"http://localhost:{ports.grafana}")
    return urls


@dataclass
class LabStatus:
    processes: dict[str, tuple[bool, str]] = field(default_factory=dict)  # name -> (up, url)
    targets: list[dict[str, str]] = field(default_factory=list)
    alerts: list[dict[str, str]] = field(default_factory=list)
    notifications: dict[str, int] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _get(client: httpx.Client, url: str, **params: Any) -> httpx.Response | None:
    try:
        return client.get(url, params=params or None)
    except httpx.HTTPError:
        return None


def collect(ports: Ports, with_grafana: bool = False, timeout: float = 3.0) -> LabStatus:
    status = LabStatus()
    with httpx.Client(timeout=timeout) as client:
        for name, (health, url) in health_urls(ports, with_grafana).items():
            r = _get(client, health)
            up = r is not None and r.status_code == 200
            status.processes[name] = (up, url)
            if not up:
                why = "not reachable" if r is None else f"HTTP {r.status_code}"
                status.problems.append(f"{name} is down ({health}: {why})")

        if status.processes["prometheus"][0]:
            r = _get(client, f"http://127.0.0.1:{ports.prometheus}/api/v1/targets", state="active")
            for t in r.json()["data"]["activeTargets"] if r is not None else []:
                row = {
                    "job": t["labels"].get("job", ""),
                    "instance": t["labels"].get("instance", ""),
                    "health": t["health"],
                    "error": t.get("lastError", ""),
                }
                status.targets.append(row)
                if row["health"] == "unknown":  # not scraped yet: a lab that just started
                    row["error"] = row["error"] or "not scraped yet"
                elif row["health"] != "up":
                    status.problems.append(
                        f"target {row['job']} {row['instance']} is {row['health']}: {row['error']}"
                    )
            if r is not None and not status.targets:
                status.problems.append("Prometheus has no active targets")

        if status.processes["alertmanager"][0]:
            r = _get(client, f"http://127.0.0.1:{ports.alertmanager}/api/v2/alerts", active="true")
            for a in r.json() if r is not None else []:
                status.alerts.append(
                    {
                        "name": a["labels"].get("alertname", "?"),
                        "severity": a["labels"].get("severity", ""),
                        "state": a.get("status", {}).get("state", ""),
                        "since": a.get("startsAt", ""),
                        "summary": a.get("annotations", {}).get("summary", ""),
                    }
                )

        if status.processes["receiver"][0]:
            counts = {}
            for channel in ("slack", "email"):
                r = _get(client, f"http://127.0.0.1:{ports.receiver_http}/notifications", channel=channel)
                counts[channel] = r.json().get("count", 0) if r is not None and r.status_code == 200 else 0
            status.notifications = counts
    return status


def render(status: LabStatus) -> str:
    lines = ["process        state  url"]
    for name, (up, url) in status.processes.items():
        lines.append(f"{name:<14} {'up' if up else 'DOWN':<6} {url}")
    if status.targets:
        lines += ["", "Prometheus targets"]
        for t in status.targets:
            err = f"  {t['error']}" if t["error"] else ""
            lines.append(f"  {t['job']:<22} {t['instance']:<24} {t['health']}{err}")
    if status.processes.get("alertmanager", (False, ""))[0]:
        lines += ["", f"Alerts in Alertmanager: {len(status.alerts) or 'none'}"]
        for a in status.alerts:
            lines.append(f"  {a['name']:<32} {a['severity']:<9} {a['state']:<11} since {a['since']}")
    if status.notifications is not None:
        n = status.notifications
        lines += ["", f"Notifications received: slack {n['slack']}, email {n['email']}"]
    if status.problems:
        lines += ["", "Problems:", *(f"  - {p}" for p in status.problems)]
    return "\n".join(lines)
