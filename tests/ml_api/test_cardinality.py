"""Cardinality: thousands of distinct inputs must not add a single exported series (labels are bounded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ml_api.data import generate_tickets
from tests.support import ml as support_ml


def series(client: TestClient) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def ml_client(ml_model_dir: Path) -> Iterator[TestClient]:
    with support_ml.ml_client(ml_model_dir, drift_interval_seconds=0.2) as client:
        yield client


def test_ml_api_series_do_not_grow_with_distinct_inputs(ml_client: TestClient) -> None:
    tickets = generate_tickets(10_500, seed=7).drop(columns=["severity"]).to_dict("records")
    tickets = [
        {k: (int(v) if isinstance(v, (int, np.integer)) else float(v)) for k, v in t.items()} for t in tickets
    ]
    rng = np.random.default_rng(7)

    def send(ticket: dict, i: int) -> None:
        kind = i % 10
        if kind == 0:  # an invalid ticket: the reason label is bounded by pydantic's error types
            ml_client.post("/predict", json={**ticket, "customer_tier": int(rng.integers(6, 10**6))})
        elif kind == 1:  # unknown paths and methods fold into one label value each
            ml_client.request("PATCH", f"/no/such/path/{i}")
        else:
            ml_client.post("/predict", json=ticket)

    for i, ticket in enumerate(tickets[:500]):  # warm-up: every bounded label value has appeared
        send(ticket, i)
    before = series(ml_client)
    for i, ticket in enumerate(tickets[500:], start=500):
        send(ticket, i)
    after = series(ml_client)
    assert len(before) > 50
    assert after - before == set(), sorted(after - before)[:20]
