"""ml_api test helpers: settings and clients on the shared trained model, metric scrapes, generated tickets.

The trained model itself is the session fixture `ml_model_dir` (tests/conftest.py): trained once per run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ml_api.app import create_app
from ml_api.data import FEATURES, generate_tickets
from ml_api.settings import MLSettings

# What `ml_model_dir` trains with (small enough to take about a second).
TRAINING = {"train_size": 8000, "holdout_size": 2000, "reference_size": 2000}
GOOD = {"ticket_length": 640, "urgency_keywords": 2, "business_impact": 6.5, "customer_tier": 3}
CLOSED_RAG_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, /triage degrades at once


def ml_settings(model_dir: Path, **overrides: Any) -> MLSettings:
    """Lab-profile settings on an existing model (never trains); a slow drift loop unless overridden."""
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "auto_train": False,
        "lab_profile": True,
        "drift_interval_seconds": 30.0,
        "rag_url": CLOSED_RAG_URL,
    }
    return MLSettings(**{**values, **overrides})


def ml_client(model_dir: Path, **overrides: Any) -> TestClient:
    """A TestClient of ml_api; enter it (`with`) to run the real lifespan."""
    return TestClient(create_app(ml_settings(model_dir, **overrides)))


def scrape(client: TestClient) -> dict[str, Metric]:
    text = client.get("/metrics").text
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample_value(families: dict[str, Metric], sample_name: str, **labels: str) -> float | None:
    family_name = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    family = families.get(family_name)
    for s in family.samples if family else []:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def tickets(n: int, seed: int) -> list[dict[str, Any]]:
    """n valid /predict bodies drawn from the generator (JSON types: counts are ints)."""
    df = generate_tickets(n, seed).loc[:, list(FEATURES)]
    return [
        {k: (float(v) if k == "business_impact" else int(v)) for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
