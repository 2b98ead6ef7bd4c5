"""Prometheus and Alertmanager down: the services do not notice (issue #6).

ml_api and rag_api are scraped, they never call Prometheus or Alertmanager; this holds them to it on the
real lab. Both monitoring processes are first hung (SIGSTOP: connections are accepted, never answered, so
a service waiting on them would block), then crashed (SIGKILL: connections refused), while /predict,
/triage and /chat keep being called: every call must succeed within a short client timeout, /ready must
stay true, and the services' own /metrics must keep counting, by exactly the requests sent. Then both are
restarted and Prometheus must scrape the services again.

It runs on the session lab (conftest.py) with the background traffic paused, so the counters move only by
the requests sent here, and it restarts Prometheus and Alertmanager whatever happens, so any test after
it gets a whole lab.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from labctl.traffic import healthy_tickets, in_domain_questions

from .conftest import Lab

pytestmark = pytest.mark.timeout(180)

MONITORING = ("prometheus", "alertmanager")  # NativeStack process names
SCRAPE_JOBS = (
    "ml-api",
    "rag-api",
    "prometheus",
    "alertmanager",
    "receiver",
)  # prometheus/prometheus.yml job names
HUNG_SECONDS = 4.0  # SIGSTOP phase
CRASHED_SECONDS = 4.0  # SIGKILL phase
CLIENT_TIMEOUT = 5.0  # a call that waits on a hung Prometheus/Alertmanager times out
MEDIAN_LATENCY_LIMIT = 1.0  # seconds; healthy calls take milliseconds, one waiting on a timeout does not
RESCRAPE_TIMEOUT = 30.0

# The services' own counters that must move by exactly what this test sends: (name, labels).
PREDICT = ("ml_http_requests_total", {"endpoint": "/predict", "method": "POST", "status": "200"})
TRIAGE = ("ml_http_requests_total", {"endpoint": "/triage", "method": "POST", "status": "200"})
TRIAGE_OK = ("triage_requests_total", {"outcome": "ok"})
RAG_CHAT = ("rag_http_requests_total", {"endpoint": "/chat", "method": "POST", "status": "200"})
RAG_CHAT_OK = ("rag_chat_requests_total", {"status": "ok"})


@dataclass
class Calls:
    """What one phase sent: successful calls by kind, failures, latencies."""

    ok: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.ok.values()) + len(self.failures)

    @property
    def max_latency(self) -> float:
        return max(self.latencies, default=0.0)


class Traffic:
    """One round = /predict, /triage, /chat, then /ready and /metrics on both services, each checked."""

    def __init__(self, lab: Lab, client: httpx.Client) -> None:
        self.lab = lab
        self.client = client
        self.tickets: Iterator[dict[str, Any]] = healthy_tickets(seed=6006)
        self.questions = in_domain_questions()
        self.i = 0

    def call(self, calls: Calls, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            r = self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:  # a timeout here is a service blocked on the missing monitoring
            calls.failures.append(f"{kind}: {type(exc).__name__} after {time.perf_counter() - started:.1f}s")
            return None
        calls.latencies.append(time.perf_counter() - started)
        if r.status_code != 200:
            calls.failures.append(f"{kind}: {r.status_code} {r.text[:200]}")
            return None
        return r

    def round(self, calls: Calls) -> None:
        lab, question = self.lab, self.questions[self.i % len(self.questions)]
        self.i += 1
        ticket = next(self.tickets)
        if self.call(calls, "predict", "POST", f"{lab.ml_url}/predict", json=ticket):
            calls.ok["predict"] += 1
        r = self.call(calls, "triage", "POST", f"{lab.ml_url}/triage", json={**ticket, "text": question})
        if r is not None:
            if r.json()["degraded"]:  # 200 all the same: count it, the TRIAGE_OK counter tells them apart
                calls.failures.append(f"triage degraded: {r.json()['degraded_detail']}")
            calls.ok["triage"] += 1
        if self.call(calls, "chat", "POST", f"{lab.rag_url}/chat", json={"query": question}):
            calls.ok["chat"] += 1
        for name, url in (("ml_api", lab.ml_url), ("rag_api", lab.rag_url)):
            r = self.call(calls, f"{name} /ready", "GET", f"{url}/ready")
            if r is not None:
                if r.json().get("ready") is not True:
                    calls.failures.append(f"{name} /ready: {r.text[:200]}")
                calls.ok["ready"] += 1
            r = self.call(calls, f"{name} /metrics", "GET", f"{url}/metrics")
            if r is not None:
                if f"{name.split('_')[0]}_http_requests_total" not in r.text:
                    calls.failures.append(f"{name} /metrics lacks its request counter")
                calls.ok["metrics"] += 1


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client, url: str) -> Samples:
    """Every sample of a service's own /metrics (not Prometheus's copy)."""
    r = client.get(f"{url}/metrics")
    assert r.status_code == 200, f"{url}/metrics: {r.status_code}"
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, key: tuple[str, dict[str, str]]) -> float:
    name, labels = key
    return samples.get((name, frozenset(labels.items())), 0.0)


def answer(url: str) -> str:
    """How `url` answers: "ok", "refused" (nobody listens) or "hangs" (accepted, no answer in 1 s)."""
    try:
        httpx.get(url, timeout=1)
    except httpx.ConnectError:
        return "refused"
    except httpx.TimeoutException:
        return "hangs"
    return "ok"


def restore(lab: Lab, name: str) -> None:
    """`name` running and healthy again, whatever state the test left it in."""
    url = {"prometheus": lab.prometheus_url, "alertmanager": lab.alertmanager_url}[name]
    if lab.procs[name].poll() is None:
        if answer(f"{url}/-/ready") == "ok":
            return
        lab.kill(name)  # hung or broken: SIGKILL also ends a stopped process
    lab.restart(name)


def fresh_up(lab: Lab, since: float) -> dict[str, float]:
    """job -> `up` for the jobs whose latest sample was scraped after `since` (epoch seconds)."""
    stamps = {s["metric"]["job"]: float(s["value"][1]) for s in lab.query("timestamp(up)")}
    ups = {s["metric"]["job"]: float(s["value"][1]) for s in lab.query("up")}
    return {job: ups[job] for job, ts in stamps.items() if ts > since and job in ups}


def test_services_unaffected_when_prometheus_and_alertmanager_hang_then_crash(lab: Lab) -> None:
    monitoring_urls = (f"{lab.prometheus_url}/-/healthy", f"{lab.alertmanager_url}/-/healthy")
    lab.traffic.pause_ml.set()
    lab.traffic.pause_chat.set()
    try:
        assert lab.traffic.wait_idle(), "the background traffic did not pause"
        with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
            traffic = Traffic(lab, client)
            baseline = Calls()
            for _ in range(3):
                traffic.round(baseline)
            assert not baseline.failures, f"failures with the monitoring up: {baseline.failures}"
            ml_before, rag_before = scrape(client, lab.ml_url), scrape(client, lab.rag_url)

            phases: dict[str, Calls] = {}
            down_at = time.time()
            for phase, seconds, crash in (("hung", HUNG_SECONDS, False), ("crashed", CRASHED_SECONDS, True)):
                for name in MONITORING:
                    if crash:
                        status = lab.kill(name)
                        assert status == -signal.SIGKILL, f"{name} exited with {status}, not by SIGKILL"
                    else:
                        lab.send_signal(name, signal.SIGSTOP)
                state = "refused" if crash else "hangs"
                # The premise, before and after the traffic: they really were hung / gone all along.
                assert [answer(u) for u in monitoring_urls] == [state] * 2, f"{phase}: monitoring not down"
                calls = phases[phase] = Calls()
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    traffic.round(calls)
                assert [answer(u) for u in monitoring_urls] == [state] * 2, f"{phase}: monitoring came back"
            ml_after, rag_after = scrape(client, lab.ml_url), scrape(client, lab.rag_url)

        for phase, calls in phases.items():
            assert not calls.failures, (
                f"monitoring {phase}: {len(calls.failures)} of {calls.sent} calls failed: "
                f"{calls.failures[:10]}"
            )
            assert calls.ok["predict"] >= 3 and calls.ok["chat"] >= 3, (
                f"{phase}: too few calls {dict(calls.ok)}"
            )
            assert statistics.median(calls.latencies) < MEDIAN_LATENCY_LIMIT, (
                f"monitoring {phase}: median latency {statistics.median(calls.latencies):.2f}s"
            )
        outage = Calls()
        for calls in phases.values():
            outage.ok.update(calls.ok)
            outage.latencies.extend(calls.latencies)
        to_chat = outage.ok["chat"] + outage.ok["triage"]  # each /triage asks rag_api's /chat once
        expected = [
            (PREDICT, ml_before, ml_after, outage.ok["predict"]),
            (TRIAGE, ml_before, ml_after, outage.ok["triage"]),
            (TRIAGE_OK, ml_before, ml_after, outage.ok["triage"]),
            (RAG_CHAT, rag_before, rag_after, to_chat),
            (RAG_CHAT_OK, rag_before, rag_after, to_chat),
        ]
        moved = {f"{k[0]}{k[1]}": value(after, k) - value(before, k) for k, before, after, _ in expected}
        wanted = {f"{k[0]}{k[1]}": float(n) for k, _, _, n in expected}
        assert moved == wanted, f"the services' counters across the outage: moved {moved}, sent {wanted}"

        for phase, calls in phases.items():
            lab.figures[f"monitoring {phase}: calls sent"] = calls.sent
            lab.figures[f"monitoring {phase}: /predict + /triage + /chat calls"] = sum(
                calls.ok[k] for k in ("predict", "triage", "chat")
            )
            lab.figures[f"monitoring {phase}: median latency (ms)"] = round(
                statistics.median(calls.latencies) * 1000
            )
            lab.figures[f"monitoring {phase}: max latency (ms)"] = round(calls.max_latency * 1000)
        lab.figures["monitoring up: max latency (ms)"] = round(baseline.max_latency * 1000)

        # Back up: Prometheus scrapes the services again (a sample newer than its restart, not an old one).
        restarted_at = time.time()
        for name in MONITORING:
            lab.figures[f"monitoring back: {name} restart to healthy (s)"] = round(lab.restart(name), 1)

        def all_up() -> dict[str, float] | None:
            up = fresh_up(lab, restarted_at)
            return up if all(up.get(job) == 1 for job in SCRAPE_JOBS) else None

        lab.wait_for("every job scraped since the restart, up == 1", all_up, RESCRAPE_TIMEOUT, every=0.5)
        lab.figures["monitoring back: restart to up == 1 for every job (s)"] = round(
            time.time() - restarted_at, 1
        )
        # Prometheus really was down: its TSDB holds no scrape from the outage.
        gap_ms = int((restarted_at - down_at - 1.0) * 1000)
        during = lab.query(f'count_over_time(up{{job="ml-api"}}[{gap_ms}ms] @ {restarted_at - 0.5:.3f})')
        assert not during, f"samples scraped while Prometheus was down: {during}"
        lab.wait_for(
            "Prometheus sends to the restarted Alertmanager",
            lambda: httpx.get(f"{lab.prometheus_url}/api/v1/alertmanagers", timeout=5).json()["data"][
                "activeAlertmanagers"
            ],
            timeout=RESCRAPE_TIMEOUT,
        )
    finally:
        # Whatever failed above, the lab leaves this test whole: monitoring healthy, traffic flowing.
        for name in MONITORING:
            restore(lab, name)
        lab.traffic.pause_ml.clear()
        lab.traffic.pause_chat.clear()
