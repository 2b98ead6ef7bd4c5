"""`labctl status`: is each process up (and how often it was restarted), where to look (only pages that
answer), are Prometheus's targets up, what fires, what has been notified."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_common.state import lab_var_dir
from labctl.client import LabClient, LabError, LabUrls
from labctl.config import Ports
from labctl.plan import HEALTH, health_url
from labctl.ui import Page, lab_pages, render_pages

# The lab's state directory (LABCTL_VAR moves it: a second lab beside a running one, on other ports).
VAR = lab_var_dir()
# Where `labctl up` records its pid, ports and processes (LABCTL_STATE_FILE moves it, e.g. for tests).
STATE_FILE = Path(os.environ.get("LABCTL_STATE_FILE") or VAR / "labctl.json")


def read_state(path: Path = STATE_FILE) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(state: dict[str, Any], path: Path = STATE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LabStatus:
    processes: dict[str, bool] = field(default_factory=dict)  # name -> up
    supervised: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> pid, restarts, last exit
    pages: list[Page] = field(default_factory=list)
    targets: list[dict[str, str]] = field(default_factory=list)
    alerts: list[dict[str, str]] = field(default_factory=list)
    notifications: dict[str, int] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def collect(
    ports: Ports,
    with_grafana: bool = False,
    timeout: float = 3.0,
    supervised: dict[str, dict[str, Any]] | None = None,
    pages: bool = True,
) -> LabStatus:
    status = LabStatus(supervised=supervised or {})
    names = [n for n in HEALTH if n != "grafana" or with_grafana]
    with LabClient(LabUrls.from_ports(ports), timeout=timeout) as client:
        for name in names:
            url = health_url(name, ports)
            r = client.get(url)
            status.processes[name] = up = r is not None and r.status_code == 200
            if not up:
                why = "not reachable" if r is None else f"HTTP {r.status_code}"
                status.problems.append(f"{name} is down ({url}: {why})")
        if status.processes["prometheus"]:
            _collect_targets(client, status)
        if status.processes["alertmanager"]:
            _collect_alerts(client, status)
        if status.processes["receiver"]:
            status.notifications = {ch: client.notification_count(ch) for ch in ("slack", "email")}
        if pages:
            status.pages = lab_pages(client, ports, grafana_installed=with_grafana)
    return status


def _collect_targets(client: LabClient, status: LabStatus) -> None:
    try:
        targets = client.targets()
    except LabError as exc:
        status.problems.append(str(exc))
        return
    for t in targets:
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
    if not status.targets:
        status.problems.append("Prometheus has no active targets")


def _collect_alerts(client: LabClient, status: LabStatus) -> None:
    try:
        alerts = client.alertmanager_alerts(active="true")
    except LabError as exc:
        status.problems.append(str(exc))
        return
    for a in alerts:
        status.alerts.append(
            {
                "name": a["labels"].get("alertname", "?"),
                "severity": a["labels"].get("severity", ""),
                "state": a.get("status", {}).get("state", ""),
                "since": a.get("startsAt", ""),
                "summary": a.get("annotations", {}).get("summary", ""),
            }
        )


def render(status: LabStatus) -> str:
    lines = ["process        state  pid      restarts  last exit"]
    # Processes without a health URL (traffic) are up while they run.
    extra = {n: bool(s.get("running")) for n, s in status.supervised.items() if n not in status.processes}
    for name, up in {**status.processes, **extra}.items():
        sup = status.supervised.get(name, {})
        pid, restarts, last = sup.get("pid") or "-", sup.get("restarts", "-"), sup.get("last_exit") or "-"
        lines.append(f"{name:<14} {'up' if up else 'DOWN':<6} {pid!s:<8} {restarts!s:<9} {last}")
    if status.pages:
        lines += ["", "Where to look", *render_pages(status.pages)]
    if status.targets:
        lines += ["", "Prometheus targets"]
        for t in status.targets:
            err = f"  {t['error']}" if t["error"] else ""
            lines.append(f"  {t['job']:<22} {t['instance']:<24} {t['health']}{err}")
    if status.processes.get("alertmanager"):
        lines += ["", f"Alerts in Alertmanager: {len(status.alerts) or 'none'}"]
        for a in status.alerts:
            lines.append(f"  {a['name']:<32} {a['severity']:<9} {a['state']:<11} since {a['since']}")
    if status.notifications is not None:
        n = status.notifications
        lines += ["", f"Notifications received: slack {n['slack']}, email {n['email']}"]
    if status.problems:
        lines += ["", "Problems:", *(f"  - {p}" for p in status.problems)]
    return "\n".join(lines)
