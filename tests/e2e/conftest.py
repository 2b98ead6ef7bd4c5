"""One real lab for every end-to-end test: services, Prometheus, Alertmanager and the alert receiver.

The lab runs on free ports in a temporary directory (labctl.stack.NativeStack) with 1 s scrapes and rule
evaluations, Alertmanager's group_wait/group_interval at 1 s, and a copy of the alert rules whose `for:` are
cut to E2E_MAX_FOR seconds (the promtool tests cover the real durations). Healthy traffic runs in the
background for the whole session; tests pause the part they replace with their own.

Test files run in name order: test_alerts_e2e.py first (its first test is the healthy-silence check, which
needs a lab no fault has touched), then test_dashboards_live.py, then test_monitoring_down.py (it hangs, kills
and restarts Prometheus and Alertmanager, and leaves both healthy again).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from labctl.client import SERVICES
from labctl.stack import NativeStack
from labctl.traffic import HealthyTraffic, healthy_tickets, in_domain_questions
from labctl.wait import WaitTimeout, wait_until
from tests.support.lab import FAST_ALERTMANAGER, native_stack
from tests.support.procs import group_members

E2E_MAX_FOR = 5.0  # seconds: every alert's `for:` in the lab's copy of the rules
SERVICE_ENV = {
    "ML_DRIFT_INTERVAL_SECONDS": "1",  # drift is recomputed every second (default 5 s)
    "LOG_LEVEL": "WARNING",
}
WARM_TIMEOUT = 60.0  # seconds for rag_api's own sentence-cache warm-up
PREFILL_TICKETS = 300  # healthy tickets sent at start: the drift window is judged from the first minute

T = TypeVar("T")


@dataclass
class Lab:
    stack: NativeStack
    traffic: HealthyTraffic
    figures: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # lab.query(...), lab.notifications(...) come from the lab's client; lab.ml_url, lab.kill(...) from
        # the stack.
        client = self.stack.client
        return getattr(client, name) if hasattr(client, name) else getattr(self.stack, name)

    def clear_faults(self) -> None:
        for service in SERVICES:
            self.stack.client.clear_faults(service)

    def notified(self, alertname: str, channel: str, since: float) -> list[dict[str, Any]]:
        """Firing notifications of `alertname` on `channel` received after `since` (epoch seconds)."""
        return [
            n
            for n in self.stack.client.notifications(channel, since)
            if n["received_at_epoch"] >= since
            and alertname in (n.get("alerts") or [])
            and n.get("status") in ("firing", "mixed")
        ]

    def snapshot(self) -> str:
        """What the lab looks like now, for failure messages."""
        parts = []
        try:
            alerts = self.stack.client.query("ALERTS")
            parts.append(
                "Prometheus ALERTS: "
                + (
                    ", ".join(f"{s['metric']['alertname']}({s['metric'].get('alertstate')})" for s in alerts)
                    or "none"
                )
            )
        except Exception as exc:  # the snapshot must never hide the original failure
            parts.append(f"Prometheus: {exc!r}")
        try:
            am = [
                f"{a['labels'].get('alertname')}({a['status']['state']}"
                + (f" by {','.join(a['status']['inhibitedBy'])}" if a["status"]["inhibitedBy"] else "")
                + ")"
                for a in self.stack.client.alertmanager_alerts()
            ]
            parts.append("Alertmanager: " + (", ".join(am) or "none"))
        except Exception as exc:
            parts.append(f"Alertmanager: {exc!r}")
        try:
            items = self.stack.client.notifications()
            parts.append(
                f"receiver ({len(items)}): "
                + (
                    "; ".join(f"{n['channel']} {n.get('status')} {n.get('alerts')}" for n in items[-12:])
                    or "none"
                )
            )
        except Exception as exc:
            parts.append(f"receiver: {exc!r}")
        parts.append(f"traffic: {dict(self.traffic.counts)}")
        try:
            self.stack.check_running()
        except Exception as exc:
            parts.append(str(exc))
        return "\n  ".join(["lab state:", *parts])

    def wait_for(self, what: str, fn: Callable[[], T], timeout: float, every: float = 1.0) -> T:
        """Poll `fn` until it returns something truthy; fail with the lab's state after `timeout` seconds."""
        try:
            return wait_until(fn, timeout=timeout, every=every, what=what, detail=self.snapshot)
        except WaitTimeout as exc:
            pytest.fail(str(exc), pytrace=False)


FIGURES: dict[str, float] = {}


def warm_up(stack: NativeStack, timeout: float = WARM_TIMEOUT) -> None:
    """Wait for rag_api's sentence cache (embedded in the background after start-up): until it is warm,
    answers take seconds on 2 busy cores and the healthy-silence check would see a latency alert.

    If it never gets warm (rag_api's warm-up task failed), warm it the slow way: every in-domain question
    once, unscored, then let those slow answers leave the 1-minute rate windows.
    """

    def warm() -> bool:
        return httpx.get(f"{stack.rag_url}/ready", timeout=10).json().get("sentence_cache") == "warm"

    with contextlib.suppress(WaitTimeout):
        wait_until(warm, timeout=timeout, every=1)
        return
    warnings.warn(
        f"rag_api's sentence cache is not warm {timeout:.0f}s after start-up: warming it with /chat calls",
        stacklevel=1,
    )
    with httpx.Client(timeout=60) as client:
        for question in in_domain_questions():
            client.post(f"{stack.rag_url}/chat", json={"query": question, "evaluate": "off"})
    time.sleep(65)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    t0 = time.monotonic()
    stack = native_stack(
        max_for=E2E_MAX_FOR,
        alertmanager_timings=FAST_ALERTMANAGER,
        service_env=SERVICE_ENV,
    )
    with stack:
        FIGURES["lab start-up to healthy (s)"] = round(time.monotonic() - t0, 1)
        warm_up(stack)
        FIGURES["lab start-up to warm (s)"] = round(time.monotonic() - t0, 1)
        tickets = healthy_tickets(seed=777)
        prefill = [next(tickets) for _ in range(PREFILL_TICKETS)]
        r = httpx.post(f"{stack.ml_url}/predict/batch", json={"tickets": prefill}, timeout=60)
        assert r.status_code == 200, f"prefilling the drift window: {r.status_code} {r.text[:500]}"
        traffic = HealthyTraffic(stack.ml_url, stack.rag_url, rate=3.0, chat_every=6)
        traffic.start()
        try:
            yield Lab(stack, traffic, FIGURES)
        finally:
            traffic.stop()
        pids = [p.pid for p in stack.procs.values()]
    # Teardown leaves nothing behind: no live process in any of the lab's process groups.
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not group_members(pids), timeout=10)
    alive = group_members(pids)
    assert not alive, f"lab processes still running after teardown: {alive}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures measured by this run (start-up, time from each fault to its notification)."""
    if FIGURES:
        terminalreporter.section("end-to-end figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<55} {value}")
