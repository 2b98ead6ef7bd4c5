"""Issue 11 #10 and #14 reproduced against a real `python -m ml_api`, printing the figures quoted in docs.

    python -m benchmarks.ml_reliability [--seconds 15] [--clients 4]

1. Batches (#10): `--clients` threads post 1,000-ticket /predict/batch for `--seconds`, with no scrape in
   between; then one scrape: tickets answered vs ml_prediction_confidence_ratio_count (one observation per
   ticket), the share lost, and ml_deferred_observations_dropped_total.
2. Drift report (#14): one client sends sequential /predict for `--seconds` alone, then again while
   `--clients` threads loop on GET /drift/report; prints /predict p50/p99 both times, reports answered and
   ml_drift_reports_total by outcome.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.soak import start
from lab_common.net import free_port
from ml_api.data import FEATURES, generate_tickets


def _tickets(n: int, seed: int) -> list[dict[str, float]]:
    frame = generate_tickets(n, seed).loc[:, list(FEATURES)]
    return [
        {k: (float(v) if k == "business_impact" else int(v)) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def samples(base: str, name: str) -> dict[str, float]:
    """label values joined by ',' -> value, for every sample called `name`."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return {
        ",".join(s.labels.values()): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def _loop(seconds: float, work) -> threading.Thread:
    def run() -> None:
        with httpx.Client(timeout=60) as client:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                work(client)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def batches(base: str, seconds: float, clients: int) -> tuple[int, float, dict[str, float]]:
    """(tickets answered, confidence observations added meanwhile, the dropped counter): printed too."""
    batch = {"tickets": _tickets(1000, 7)}
    answered = [0] * clients

    def poster(i: int):
        def work(client: httpx.Client) -> None:
            if client.post(f"{base}/predict/batch", json=batch).status_code == 200:
                answered[i] += 1000

        return work

    before = samples(base, "ml_prediction_confidence_ratio_count").get("", 0.0)
    threads = [_loop(seconds, poster(i)) for i in range(clients)]
    for t in threads:
        t.join()
    observed = samples(base, "ml_prediction_confidence_ratio_count").get("", 0.0) - before
    dropped = samples(base, "ml_deferred_observations_dropped_total")
    sent = sum(answered)
    lost = 100 * (1 - observed / sent) if sent else 0.0
    print(f"batches: {clients} clients x 1,000 tickets for {seconds:.0f}s: {sent} tickets answered, "
          f"{observed:.0f} observed, {lost:.1f}% lost, dropped counter {dropped or 'absent'}")  # fmt: skip
    return sent, observed, dropped


def _predict_latencies(base: str, seconds: float) -> list[float]:
    ticket = _tickets(1, 9)[0]
    latencies: list[float] = []

    def work(client: httpx.Client) -> None:
        started = time.perf_counter()
        client.post(f"{base}/predict", json=ticket)
        latencies.append(time.perf_counter() - started)

    _loop(seconds, work).join()
    return latencies


def _percentiles(latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=100)
    return f"p50 {1000 * q[49]:.1f} ms, p99 {1000 * q[98]:.1f} ms ({len(latencies)} requests)"


def _p99_ms(latencies: list[float]) -> float:
    return 1000 * statistics.quantiles(latencies, n=100)[98]


def drift_report(base: str, seconds: float, clients: int) -> tuple[float, float, list[int], dict[str, float]]:
    """(/predict p99 ms alone, p99 ms with report callers, the reports' statuses, ml_drift_reports_total by
    outcome added meanwhile): printed too."""
    alone = _predict_latencies(base, seconds)
    print(f"/predict alone: {_percentiles(alone)}")
    answers: list[int] = []

    def report(client: httpx.Client) -> None:
        answers.append(client.get(f"{base}/drift/report").status_code)

    before = samples(base, "ml_drift_reports_total")
    callers = [_loop(seconds, report) for _ in range(clients)]
    with_reports = _predict_latencies(base, seconds)
    for t in callers:
        t.join()
    outcomes = {k: v - before.get(k, 0.0) for k, v in samples(base, "ml_drift_reports_total").items()}
    print(f"/predict with {clients} /drift/report callers: {_percentiles(with_reports)}")
    ok = sum(1 for s in answers if s == 200)
    print(f"reports answered: {ok} x 200 of {len(answers)}; ml_drift_reports_total {outcomes or 'absent'}")
    return _p99_ms(alone), _p99_ms(with_reports), answers, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"ML_PORT": str(port), "ML_MODEL_DIR": f"{tmp}/models", "LAB_PROFILE": "false"}
        process, base = start("ml_api", env, port)
        try:
            batches(base, args.seconds, args.clients)
            drift_report(base, args.seconds, args.clients)
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
