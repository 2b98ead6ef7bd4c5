"""ml_api over HTTP (FastAPI TestClient with the real lifespan): validation, metrics, drift wiring, faults."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml_api.app import create_app
from ml_api.data import FEATURES, SEVERITIES
from ml_api.settings import MLSettings
from tests.support.ml import GOOD, ml_client, sample_value, scrape, tickets, wait_for

CONTRACT_METRICS = {
    # family name (as the parser reports it) -> type
    "ml_http_requests": "counter",
    "ml_http_request_duration_seconds": "histogram",
    "ml_predictions": "counter",
    "ml_prediction_confidence_ratio": "histogram",
    "ml_feature_ticket_length_characters": "histogram",
    "ml_feature_urgency_keywords": "histogram",
    "ml_feature_business_impact_score": "histogram",
    "ml_feature_customer_tier": "histogram",
    "ml_feature_drift_score": "gauge",
    "ml_feature_drift_detected": "gauge",
    "ml_drifted_features_ratio": "gauge",
    "ml_dataset_drift_detected": "gauge",
    "ml_prediction_drift_score": "gauge",
    "ml_drift_window_samples": "gauge",
    "ml_drift_window_sufficient": "gauge",
    "ml_drift_evaluations": "counter",
    "ml_drift_evaluation_duration_seconds": "histogram",
    "ml_model_info": "gauge",
    "ml_model_accuracy_ratio": "gauge",
    "ml_model_macro_f1_ratio": "gauge",
    "ml_invalid_requests": "counter",
    "ml_deferred_observations_dropped": "counter",
    "ml_drift_reports": "counter",
    "triage_requests": "counter",
    "triage_degraded": "counter",
    "triage_request_duration_seconds": "histogram",
    "triage_rag_call_duration_seconds": "histogram",
}
DRIFT_VALUE_GAUGES = (
    "ml_feature_drift_score",
    "ml_feature_drift_detected",
    "ml_drifted_features_ratio",
    "ml_dataset_drift_detected",
    "ml_prediction_drift_score",
)


@pytest.fixture
def client(ml_model_dir: Path) -> Iterator[TestClient]:
    with ml_client(ml_model_dir) as c:
        yield c


# --- prediction --------------------------------------------------------------------------------------------


def test_predict_returns_severity_probabilities_and_version(client: TestClient) -> None:
    r = client.post("/predict", json=GOOD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["severity"] in SEVERITIES
    assert list(body["probabilities"]) == list(SEVERITIES)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["model_version"] == client.get("/model").json()["version"]
    # a clearly severe ticket outranks a clearly mild one
    mild = client.post(
        "/predict", json={**GOOD, "business_impact": 0.5, "urgency_keywords": 0, "customer_tier": 1}
    )
    severe = client.post(
        "/predict", json={**GOOD, "business_impact": 9.5, "urgency_keywords": 8, "customer_tier": 5}
    )
    assert mild.json()["severity"] == "low"
    assert severe.json()["severity"] == "critical"


def test_batch_matches_single(client: TestClient) -> None:
    batch = tickets(50, 5)
    r = client.post("/predict/batch", json={"tickets": batch})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 50
    for ticket, pred in list(zip(batch, preds, strict=True))[:10]:
        single = client.post("/predict", json=ticket).json()
        assert single["severity"] == pred["severity"]
        for cls in SEVERITIES:
            assert single["probabilities"][cls] == pytest.approx(
                pred["probabilities"][cls], rel=1e-9, abs=1e-12
            )


def test_model_card_served(client: TestClient, ml_model_dir: Path) -> None:
    card = client.get("/model").json()
    assert card["metrics"]["accuracy"] > 0.5
    families = scrape(client)
    assert sample_value(families, "ml_model_accuracy_ratio") == pytest.approx(card["metrics"]["accuracy"])
    assert sample_value(families, "ml_model_macro_f1_ratio") == pytest.approx(card["metrics"]["macro_f1"])
    assert (
        sample_value(families, "ml_model_info", version=card["version"], trained_at=card["trained_at"]) == 1.0
    )
    assert client.get("/ready").json() == {"ready": True, "model_version": card["version"]}


# --- validation --------------------------------------------------------------------------------------------

INVALID = [
    ({**GOOD, "ticket_length": 0}, "ticket_length", "greater_than_equal"),
    ({**GOOD, "ticket_length": 20001}, "ticket_length", "less_than_equal"),
    ({**GOOD, "urgency_keywords": 51}, "urgency_keywords", "less_than_equal"),
    ({**GOOD, "business_impact": 10.5}, "business_impact", "less_than_equal"),
    ({**GOOD, "business_impact": -0.1}, "business_impact", "greater_than_equal"),
    ({**GOOD, "customer_tier": 6}, "customer_tier", "less_than_equal"),
    ({k: v for k, v in GOOD.items() if k != "customer_tier"}, "customer_tier", "missing"),
    ({**GOOD, "ticket_length": "long"}, "ticket_length", "int_type"),
    ({**GOOD, "ticket_length": "640"}, "ticket_length", "int_type"),
    ({**GOOD, "customer_tier": 2.5}, "customer_tier", "int_type"),
    ({**GOOD, "urgency_keywords": True}, "urgency_keywords", "int_type"),
    ({**GOOD, "business_impact": "high"}, "business_impact", "float_type"),
    ({**GOOD, "business_impact": None}, "business_impact", "float_type"),
    ({**GOOD, "tier": 3}, "tier", "extra_forbidden"),
]


@pytest.mark.parametrize(("payload", "field", "error_type"), INVALID)
def test_invalid_ticket_is_422_naming_the_field(
    client: TestClient, payload: dict[str, Any], field: str, error_type: str
) -> None:
    before = sample_value(scrape(client), "ml_invalid_requests_total", reason=error_type) or 0.0
    r = client.post("/predict", json=payload)
    assert r.status_code == 422
    errors = r.json()["detail"]
    assert any(e["field"] == field and e["type"] == error_type for e in errors), errors
    after = sample_value(scrape(client), "ml_invalid_requests_total", reason=error_type)
    assert after == before + 1


def test_non_finite_and_malformed_bodies(client: TestClient) -> None:
    r = client.post(
        "/predict",
        content=b'{"ticket_length": 5, "urgency_keywords": 1, "business_impact": NaN, "customer_tier": 1}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "business_impact"
    r = client.post("/predict", content=b'{"ticket_length": 5,', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post("/predict", json=[GOOD])
    assert r.status_code == 422


def test_batch_limits(client: TestClient) -> None:
    r = client.post("/predict/batch", json={"tickets": [GOOD] * 1001})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "tickets"
    assert r.json()["detail"][0]["type"] == "too_long"
    assert client.post("/predict/batch", json={"tickets": []}).status_code == 422
    assert client.post("/predict/batch", json={"tickets": [GOOD] * 1000}).status_code == 200
    bad = [GOOD] * 5 + [{**GOOD, "customer_tier": 0}]
    r = client.post("/predict/batch", json={"tickets": bad})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "tickets.5.customer_tier"


def test_oversized_bodies_are_413_and_counted(ml_model_dir: Path) -> None:
    """Judged by Content-Length before the app runs, or while streaming a body that has none (chunked)."""
    big = json.dumps({"tickets": [GOOD] * 40}).encode()
    small = json.dumps({"tickets": [GOOD] * 3}).encode()
    assert len(small) < 2048 < len(big)

    def chunks(body: bytes) -> Iterator[bytes]:  # a generator body is sent chunked, without Content-Length
        for i in range(0, len(body), 500):
            yield body[i : i + 500]

    with ml_client(ml_model_dir, max_body_bytes=2048) as client:
        before = scrape(client)
        r = client.post("/predict/batch", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json() == {"detail": "request body larger than 2048 bytes"}
        r = client.post("/predict/batch", content=chunks(big), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json() == {"detail": "request body larger than 2048 bytes"}
        # under the limit, with or without Content-Length, the request goes through
        r = client.post("/predict/batch", content=small, headers={"content-type": "application/json"})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
        r = client.post("/predict/batch", content=chunks(small), headers={"content-type": "application/json"})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 3
        assert client.get("/drift/status").json()["window_size"] == 6  # the refused ones never entered
        after = scrape(client)
    # by Content-Length: refused before routing ("other", with any method); streamed: the route had matched
    for endpoint, method in (("other", "OTHER"), ("/predict/batch", "POST")):
        labels = {"endpoint": endpoint, "method": method, "status": "413"}
        counted = sample_value(after, "ml_http_requests_total", **labels)
        assert counted == (sample_value(before, "ml_http_requests_total", **labels) or 0.0) + 1, endpoint
    ok = {"endpoint": "/predict/batch", "method": "POST", "status": "200"}
    ok_before = sample_value(before, "ml_http_requests_total", **ok) or 0.0
    assert sample_value(after, "ml_http_requests_total", **ok) == ok_before + 2


def test_rejected_requests_never_enter_the_window(client: TestClient) -> None:
    client.post("/predict", json=GOOD)
    client.post("/predict/batch", json={"tickets": [GOOD] * 3})
    assert client.get("/drift/status").json()["window_size"] == 4
    before = scrape(client)
    for payload, _, _ in INVALID:
        assert client.post("/predict", json=payload).status_code == 422
    assert (
        client.post("/predict/batch", json={"tickets": [GOOD, {**GOOD, "ticket_length": -1}]}).status_code
        == 422
    )
    assert client.post("/triage", json={**GOOD, "text": ""}).status_code == 422
    assert client.get("/drift/status").json()["window_size"] == 4
    after = scrape(client)
    for f in ("ticket_length_characters", "customer_tier"):
        name = f"ml_feature_{f}_count"
        assert sample_value(after, name) == sample_value(before, name)


# --- metrics -----------------------------------------------------------------------------------------------


def test_metrics_expose_the_contract(ml_model_dir: Path) -> None:
    with ml_client(ml_model_dir, drift_min_window=20, drift_interval_seconds=0.1) as client:
        client.post("/predict", json=GOOD)
        client.post("/predict/batch", json={"tickets": tickets(40, 3)})
        client.post("/predict", json={**GOOD, "customer_tier": 9})
        client.post("/triage", json={**GOOD, "text": "the API is down"})
        wait_for(lambda: client.get("/drift/status").json()["sufficient"])
        families = scrape(client)
    missing = {n for n in CONTRACT_METRICS if n not in families}
    assert not missing
    wrong_type = {n: families[n].type for n, t in CONTRACT_METRICS.items() if families[n].type != t}
    assert not wrong_type
    labels = {
        "ml_http_requests": {"endpoint", "method", "status"},
        "ml_predictions": {"severity"},
        "ml_feature_drift_score": {"feature"},
        "ml_feature_drift_detected": {"feature"},
        "ml_drift_evaluations": {"result"},
        "ml_model_info": {"version", "trained_at"},
        "ml_invalid_requests": {"reason"},
        "ml_deferred_observations_dropped": {"queue"},
        "ml_drift_reports": {"outcome"},
        "triage_requests": {"outcome"},
        "triage_degraded": {"reason"},
    }
    for name, expected in labels.items():
        samples = [s for s in families[name].samples if not s.name.endswith("_created")]
        assert samples, name
        assert all(set(s.labels) == expected for s in samples), name
    assert {s.labels["severity"] for s in families["ml_predictions"].samples} == set(SEVERITIES)
    assert {s.labels["feature"] for s in families["ml_feature_drift_score"].samples} == set(FEATURES)
    dropped = families["ml_deferred_observations_dropped"].samples
    assert {s.labels["queue"]: s.value for s in dropped if s.name.endswith("_total")} == {
        "http_request_duration": 0.0,
        "prediction_inputs": 0.0,
    }
    # route templates, never raw paths
    assert {s.labels["endpoint"] for s in families["ml_http_requests"].samples} >= {
        "/predict",
        "/predict/batch",
    }
    # histograms count every accepted ticket: 1 + 40 + 1 (triage), not the rejected one
    assert sample_value(families, "ml_feature_customer_tier_count") >= 42
    buckets = [
        s.labels["le"] for s in families["ml_feature_ticket_length_characters"].samples if "le" in s.labels
    ]
    assert len(buckets) >= 8  # reference quantiles, not the default latency buckets


def test_promtool_check_metrics_clean(client: TestClient) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    client.post("/predict", json=GOOD)
    client.post("/predict", json={**GOOD, "ticket_length": 0})
    client.post("/triage", json={**GOOD, "text": "hello"})
    text = client.get("/metrics").text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


# --- drift -------------------------------------------------------------------------------------------------


def test_drift_insufficient_then_numbers_then_reset(ml_model_dir: Path) -> None:
    with ml_client(ml_model_dir, drift_min_window=100, drift_interval_seconds=0.1) as client:
        client.post("/predict/batch", json={"tickets": tickets(60, 21)})
        wait_for(lambda: client.get("/drift/status").json()["evaluated_window_size"] == 60)
        status = client.get("/drift/status").json()
        assert status["sufficient"] is False and status["status"] == "insufficient data"
        assert status["features"] == {} and status["drifted_share"] is None
        assert status["last_evaluated_at"] is not None
        families = scrape(client)
        for name in DRIFT_VALUE_GAUGES:  # absent, never a made-up number
            assert not families[name].samples, name
        assert sample_value(families, "ml_drift_window_sufficient") == 0
        assert sample_value(families, "ml_drift_window_samples") == 60
        assert sample_value(families, "ml_drift_evaluations_total", result="insufficient_data") >= 1
        assert client.get("/drift/report").status_code == 409

        # same distribution as training: judged, no dataset drift
        client.post("/predict/batch", json={"tickets": tickets(240, 22)})
        wait_for(lambda: client.get("/drift/status").json()["evaluated_window_size"] == 300)
        status = client.get("/drift/status").json()
        assert status["sufficient"] is True and status["status"] == "ok"
        assert set(status["features"]) == set(FEATURES)
        assert all(0.0 <= f["score"] <= 1.0 for f in status["features"].values())
        assert status["dataset_drift"] is False
        assert 0.0 <= status["prediction_drift"]["score"] <= 1.0
        families = scrape(client)
        for feature in FEATURES:
            score = sample_value(families, "ml_feature_drift_score", feature=feature)
            assert score == pytest.approx(status["features"][feature]["score"])
        assert sample_value(families, "ml_drift_window_sufficient") == 1
        assert not math.isnan(sample_value(families, "ml_drifted_features_ratio"))

        r = client.post("/drift/reset")
        assert r.status_code == 200 and r.json()["window_size"] == 0
        status = client.get("/drift/status").json()
        assert status["window_size"] == 0 and status["sufficient"] is False
        assert not scrape(client)["ml_feature_drift_score"].samples


def test_drift_detects_shifted_traffic(ml_model_dir: Path) -> None:
    with ml_client(ml_model_dir, drift_min_window=100, drift_interval_seconds=0.1) as client:
        shifted = tickets(300, 31)
        for t in shifted:  # an incident: everything is urgent and high-impact, from big customers
            t["business_impact"] = min(10.0, t["business_impact"] + 4.0)
            t["urgency_keywords"] = t["urgency_keywords"] + 5
            t["customer_tier"] = 5
        client.post("/predict/batch", json={"tickets": shifted})
        wait_for(lambda: client.get("/drift/status").json()["evaluated_window_size"] == 300)
        status = client.get("/drift/status").json()
        assert status["dataset_drift"] is True
        assert {f for f, v in status["features"].items() if v["detected"]} >= {
            "business_impact",
            "urgency_keywords",
            "customer_tier",
        }
        assert status["prediction_drift"]["detected"] is True
        assert scrape(client)["ml_dataset_drift_detected"].samples[0].value == 1.0
        report = client.get("/drift/report")
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/html")
        assert "business_impact" in report.text


def test_drift_reset_needs_admin_outside_lab(ml_model_dir: Path) -> None:
    settings = MLSettings(model_dir=ml_model_dir, auto_train=False, lab_profile=False, admin_token="s3cret")
    with TestClient(create_app(settings)) as client:
        assert client.post("/drift/reset").status_code == 401
        assert client.post("/drift/reset", headers={"X-Admin-Token": "s3cret"}).status_code == 200


# --- faults ------------------------------------------------------------------------------------------------


def test_error_and_latency_faults(client: TestClient) -> None:
    r = client.post("/admin/faults/errors", json={"duration_seconds": 30, "params": {"rate": 1.0}})
    assert r.status_code == 200, r.text
    assert client.post("/predict", json=GOOD).status_code == 503
    assert client.post("/predict/batch", json={"tickets": [GOOD]}).status_code == 200  # /predict only
    client.delete("/admin/faults/errors")
    assert client.post("/predict", json=GOOD).status_code == 200

    client.post("/admin/faults/latency", json={"duration_seconds": 30, "params": {"delay_ms": 200}})
    started = time.perf_counter()
    assert client.post("/predict", json=GOOD).status_code == 200
    assert time.perf_counter() - started >= 0.2
    client.delete("/admin/faults/all")
