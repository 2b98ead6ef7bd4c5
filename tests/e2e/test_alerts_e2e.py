"""Alerts end to end: healthy traffic stays silent; drift, hallucination and latency faults each fire their
alert in Prometheus, and Alertmanager delivers it to the receiver (Slack protocol, and SMTP for criticals).

Alert names are those of prometheus/rules/alerts.yml (the lab runs a copy whose `for:` are cut to a few
seconds, see conftest.py). Every wait is bounded and fails with what Prometheus, Alertmanager and the
receiver held at that moment.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from labctl.config import ROOT, alert_names, rule_files
from labctl.traffic import healthy_tickets, in_domain_questions

from .conftest import Lab

pytestmark = pytest.mark.timeout(900)

DRIFT_ALERT = "MLDataDriftDetected"  # critical: Slack and email
HALLUCINATION_ALERT = "LLMHallucinationHigh"  # critical
LATENCY_ALERT = "MLHighLatencyP90"  # warning: Slack (800 ms stays under the p99 > 1 s critical)
SILENCE_SECONDS = 60
ALERT_TIMEOUT = 120  # from the fault to the notification; the lab typically needs 10-30 s


def test_alert_names_exist_in_the_rules() -> None:
    names = alert_names(rule_files(ROOT / "prometheus" / "prometheus.yml"))
    for name in (DRIFT_ALERT, HALLUCINATION_ALERT, LATENCY_ALERT):
        assert name in names, f"{name} is not an alert of prometheus/rules/: {names}"


@contextmanager
def background(send: Callable[[httpx.Client], Any], workers: int = 1, pause: float = 0.0) -> Iterator[None]:
    """Call `send` in a loop on `workers` threads until the block ends."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    send(client)
                except httpx.HTTPError as exc:  # a slow or refused call is what some faults do
                    errors.append(exc)
                stop.wait(pause)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def await_alert(lab: Lab, alertname: str, channels: tuple[str, ...], since: float, label: str) -> None:
    """Wait until `alertname` fires in Prometheus and reaches every channel; record how long each took."""
    fired_at: float | None = None

    def check() -> bool:
        nonlocal fired_at
        if fired_at is None and alertname in lab.firing_alerts():
            fired_at = time.time()
        return all(lab.notified(alertname, ch, since) for ch in channels)

    lab.wait_for(f"{alertname} notified on {', '.join(channels)}", check, ALERT_TIMEOUT)
    if fired_at is not None:
        lab.figures[f"{label}: fault -> firing in Prometheus (s)"] = round(fired_at - since, 1)
    for ch in channels:
        first = min(n["received_at_epoch"] for n in lab.notified(alertname, ch, since))
        lab.figures[f"{label}: fault -> {ch} notification (s)"] = round(first - since, 1)


# ------------------------------------------------------------------------------------------------ silence


def test_healthy_traffic_fires_nothing(lab: Lab) -> None:
    # The checks below only mean something once the drift window is judged and answers are being scored.
    lab.wait_for(
        "drift window sufficient", lambda: lab.query("max(ml_drift_window_sufficient) == 1"), timeout=60
    )
    lab.wait_for(
        "answers scored", lambda: lab.query('sum(llm_evaluations_total{result="ok"}) > 3'), timeout=90
    )
    start = time.time()
    deadline = time.monotonic() + SILENCE_SECONDS
    while time.monotonic() < deadline:
        firing = lab.firing_alerts()
        assert not firing, f"alerts fired on healthy traffic: {firing}\n{lab.snapshot()}"
        time.sleep(2)
    # Between polls too: anything that fired in the window shows in ALERTS' history.
    window = int(time.time() - start) + 5
    fired = lab.query(f'max_over_time(ALERTS{{alertstate="firing"}}[{window}s])')
    assert not fired, f"alerts fired on healthy traffic: {[s['metric'] for s in fired]}"
    assert lab.notifications() == [], f"notifications on healthy traffic:\n{lab.snapshot()}"
    counts = lab.traffic.counts
    assert counts["predict 200"] > 100 and counts["chat 200"] > 20, f"too little healthy traffic: {counts}"
    assert set(counts) <= {"predict 200", "chat 200"}, f"healthy traffic got errors: {dict(counts)}"
    lab.figures["healthy traffic: silent for (s)"] = SILENCE_SECONDS


# -------------------------------------------------------------------------------------------------- drift


def drifted(ticket: dict[str, Any]) -> dict[str, Any]:
    """The ticket far outside the reference: maximal impact, 5x longer, many urgency words."""
    return {
        **ticket,
        "business_impact": 10.0,
        "ticket_length": min(20000, ticket["ticket_length"] * 5),
        "urgency_keywords": min(50, ticket["urgency_keywords"] + 12),
    }


@contextmanager
def drifted_window(lab: Lab, *, seed: int, label: str) -> Iterator[float]:
    """Drift ml_api's window until DRIFT_ALERT (critical: Slack and email) is notified; yields `since`. On
    leaving, the window is back to the reference distribution, so the later tests see a calm one."""
    tickets = healthy_tickets(seed=seed)
    window = 500  # ML_DRIFT_WINDOW_SIZE default: one batch replaces the whole window
    since = time.time()
    lab.traffic.pause_ml.set()
    try:
        batch = [drifted(next(tickets)) for _ in range(window)]
        r = httpx.post(f"{lab.ml_url}/predict/batch", json={"tickets": batch}, timeout=60)
        assert r.status_code == 200, r.text[:500]

        def more(client: httpx.Client) -> None:
            client.post(f"{lab.ml_url}/predict/batch", json={"tickets": [drifted(next(tickets))] * 20})

        with background(more, pause=1.0):
            await_alert(lab, DRIFT_ALERT, ("slack", "email"), since, label)
        yield since
    finally:
        healthy = [next(tickets) for _ in range(window)]
        httpx.post(f"{lab.ml_url}/predict/batch", json={"tickets": healthy}, timeout=60)
        lab.traffic.pause_ml.clear()


def test_data_drift_reaches_slack_and_email(lab: Lab) -> None:
    with drifted_window(lab, seed=4242, label="data drift"):
        status = httpx.get(f"{lab.ml_url}/metrics", timeout=10).text
        assert "ml_dataset_drift_detected 1.0" in status


# ---------------------------------------------------------------------------------------------- hallucination


def test_hallucination_reaches_slack(lab: Lab) -> None:
    questions = in_domain_questions()
    since = time.time()
    lab.inject("rag_api", "hallucination", 90, rate=1.0)
    counter = itertools.count()

    def chat(client: httpx.Client) -> None:
        client.post(f"{lab.rag_url}/chat", json={"query": questions[next(counter) % len(questions)]})

    try:
        with background(chat, workers=2, pause=0.2):
            await_alert(lab, HALLUCINATION_ALERT, ("slack",), since, "hallucination")
    finally:
        lab.clear_faults()


# ------------------------------------------------------------------------------------------------- latency


def test_ml_latency_reaches_slack(lab: Lab) -> None:
    gen = healthy_tickets(seed=99)
    tickets = [next(gen) for _ in range(1000)]
    counter = itertools.count()  # thread-safe, unlike a generator shared by the workers
    since = time.time()
    lab.inject("ml_api", "latency", 90, delay_ms=800)

    def predict(client: httpx.Client) -> None:
        client.post(f"{lab.ml_url}/predict", json=tickets[next(counter) % len(tickets)])

    try:
        with background(predict, workers=4):
            await_alert(lab, LATENCY_ALERT, ("slack",), since, "ML latency")
    finally:
        lab.clear_faults()
