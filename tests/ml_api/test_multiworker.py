"""Several uvicorn workers: every scrape counts every request once, whichever worker answers it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab_common.net import free_port
from labctl.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
TICKET = {"ticket_length": 640, "urgency_keywords": 2, "business_impact": 6.5, "customer_tier": 3}


def sample_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture(scope="module")
def two_worker_ml_api(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("multiworker")
    stale = tmp / "multiproc"
    stale.mkdir()
    (stale / "counter_999.db").write_bytes(b"stale")  # the launcher must wipe what a previous run left
    port = free_port()
    env = {
        **os.environ,
        "ML_MODEL_DIR": str(tmp / "models"),
        "ML_PORT": str(port),
        "ML_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(stale),
    }
    process = subprocess.Popen([sys.executable, "-m", "ml_api"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"

    def both_ready() -> bool:
        assert process.poll() is None, "python -m ml_api exited"
        # Both workers must be ready: ask several times over fresh connections.
        return all(httpx.get(f"{base}/ready", timeout=2).status_code == 200 for _ in range(6))

    try:
        wait_until(
            both_ready, timeout=120, every=0.5, what="ml_api with 2 workers", retry_on=(httpx.HTTPError,)
        )
        yield base, stale
    finally:
        process.terminate()
        process.wait(20)


def test_counters_are_exact_across_workers(two_worker_ml_api) -> None:
    base, multiproc_dir = two_worker_ml_api
    assert not (multiproc_dir / "counter_999.db").exists()
    for _ in range(40):
        # A fresh connection per request lets the kernel spread them over both workers.
        assert httpx.post(f"{base}/predict", json=TICKET, timeout=5).status_code == 200
    for _ in range(6):
        text = httpx.get(f"{base}/metrics", timeout=5).text
        assert sample_sum(text, "ml_http_requests_total", endpoint="/predict", status="200") == 40
        assert sample_sum(text, "ml_predictions_total") == 40
    # Gauges are aggregated too: the model gauges appear once, with the real value.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    accuracy = [s.value for s in families["ml_model_accuracy_ratio"].samples]
    assert len(accuracy) == 1 and 0 < accuracy[0] <= 1
