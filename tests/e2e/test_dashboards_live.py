"""Every Grafana panel query, run against the live lab's Prometheus: it must parse and return data.

Some panels only have data after something went wrong (5xx, invalid requests, degraded triage, failed
evaluations, firing alerts); the test makes each of those happen first. NO_DATA_ALLOWED lists the few
panels that cannot have data in this lab, with the reason.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from labctl.traffic import healthy_tickets, in_domain_questions
from labctl.wait import WaitTimeout, wait_until
from simulations.eval import push
from tests.dashboards import grafana_queries

from .conftest import Lab

pytestmark = pytest.mark.timeout(600)

# (dashboard uid, panel title) -> why it may have no data in this lab. Keep it tiny.
_BASELINE = (
    "the anomaly rules' baseline window ends 5 min ago (monitoring/anomaly.py, lab profile): a test lab this "
    "young has none yet; tests/monitoring/test_anomaly.py and prometheus/tests/anomaly_test.yml "
    "check those rules"
)
NO_DATA_ALLOWED: dict[tuple[str, str], str] = {
    ("pipeline-health", "Anomalies"): _BASELINE,
    ("pipeline-health", "Latency p90 and its band"): _BASELINE,
    ("pipeline-health", "Anomaly alerts"): "healthy traffic raises no anomaly alert, as it should",
}


def generate_unhealthy_data(lab: Lab) -> None:
    """Make the rare series exist: triage (ok and degraded), 5xx, 422, failed evaluations, a firing alert."""
    tickets = healthy_tickets(seed=5150)
    questions = in_domain_questions()
    with httpx.Client(timeout=30) as client:
        # /triage, healthy: its latency and RAG-call histograms.
        for _ in range(3):
            r = client.post(f"{lab.ml_url}/triage", json={**next(tickets), "text": questions[0]})
            assert r.status_code == 200, r.text[:300]
        # A 422: invalid requests by reason.
        r = client.post(f"{lab.ml_url}/predict", json={**next(tickets), "customer_tier": 9})
        assert r.status_code == 422
        # rag_api too slow for triage's timeout: degraded triage (reason "timeout").
        lab.inject("rag_api", "latency", 30, delay_ms=3000)
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda _: client.post(
                        f"{lab.ml_url}/triage", json={**next(tickets), "text": questions[1]}
                    ),
                    range(4),
                )
            )
        lab.clear_faults()
        # Failed evaluations.
        lab.inject("rag_api", "evaluation_failure", 30, rate=1.0)
        for q in questions[:6]:
            client.post(f"{lab.rag_url}/chat", json={"query": q})
        # 5xx answers, which also fire the ML error-ratio alert (for: shortened to seconds).
        lab.inject("ml_api", "errors", 30, rate=1.0)
        for _ in range(20):
            client.post(f"{lab.ml_url}/predict", json=next(tickets))
            time.sleep(0.2)
    # The eval gate's figures, pushed to the lab's real Pushgateway as `python -m simulations eval` does.
    figures = {"pass_rate": 1.0, "groundedness_mean": 0.9}
    push(f"http://127.0.0.1:{lab.stack.ports.pushgateway}", figures, True, 2, "dashboards-live", figures)
    lab.wait_for("some alert firing", lab.firing_alerts, timeout=60)
    lab.clear_faults()


def test_every_panel_query_returns_data(lab: Lab) -> None:
    queries = grafana_queries()
    assert len(queries) > 50, f"only {len(queries)} panel queries found: is grafana/dashboards/ complete?"
    generate_unhealthy_data(lab)

    def run(expr: str) -> tuple[str, list]:
        r = httpx.get(f"{lab.prometheus_url}/api/v1/query", params={"query": expr}, timeout=20)
        body = r.json()
        if body.get("status") != "success":
            return f"error: {body.get('errorType')}: {body.get('error')}", []
        return "success", body["data"]["result"]

    # Rates need two scrapes inside their window: poll a little before judging the empty ones.
    problems: dict[tuple[str, str, str], str] = {}

    def judged() -> bool:
        problems.clear()
        for uid, title, expr in queries:
            status, result = run(expr)
            if status != "success":
                problems[(uid, title, expr)] = status
            elif not result and (uid, title) not in NO_DATA_ALLOWED:
                problems[(uid, title, expr)] = "no data"
        # A query that does not parse will not get better by waiting.
        return not problems or any(v != "no data" for v in problems.values())

    with contextlib.suppress(WaitTimeout):  # the assertion below lists what is still missing
        wait_until(judged, timeout=45, every=3)
    report = "\n".join(
        f"  [{uid}] {title}: {why}\n      {expr}" for (uid, title, expr), why in problems.items()
    )
    assert not problems, (
        f"{len(problems)} of {len(queries)} panel queries failed:\n{report}\n{lab.snapshot()}"
    )
    lab.figures["dashboard panel queries checked"] = len(queries)
