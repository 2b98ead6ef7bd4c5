"""The fault and admin API of both services, through their real apps (issue 11 findings 1, 2, 3, 17).

Bad fault parameters are a 422 naming the field, never a fault that turns later requests into 500s; an
injected sleep ends when its fault ends; any byte in X-Admin-Token is a 401, not a 500.
"""

from __future__ import annotations

import json
import math
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lab_common.faults import MAX_DELAY_MS
from ml_api.app import create_app as create_ml_app
from ml_api.settings import MLSettings
from ml_api.train import train
from rag_api.app import create_app as create_rag_app
from rag_api.settings import RAGSettings

TICKET = {"ticket_length": 640, "urgency_keywords": 2, "business_impact": 6.5, "customer_tier": 3}
LAB = {"lab_profile": True, "admin_token": None}
FAULT_SECONDS = 1.0  # the longest a fault lasts in the shared client


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fault-api-models")
    train(path, train_size=2000, holdout_size=500, reference_size=500)
    return path


def ml_client(model_dir: Path, **overrides: Any) -> TestClient:
    settings = MLSettings(
        model_dir=model_dir, auto_train=False, rag_url="http://127.0.0.1:9", **{**LAB, **overrides}
    )
    return TestClient(create_ml_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def ml(model_dir: Path) -> Iterator[TestClient]:
    with ml_client(model_dir, max_fault_seconds=FAULT_SECONDS) as client:
        yield client


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TestClient]:
    """Both apps without their lifespan (no model, no index): the admin routes need neither."""
    tmp = tmp_path_factory.mktemp("fault-api")
    return {
        "ml_api": TestClient(create_ml_app(MLSettings(model_dir=tmp / "m", **LAB))),
        "rag_api": TestClient(create_rag_app(RAGSettings(chroma_path=tmp / "c", **LAB))),
    }


def post_raw(client: TestClient, path: str, body: str, **headers: str) -> Any:
    """POST a body as written (json= would refuse NaN and cannot send a malformed document)."""
    return client.post(path, content=body.encode(), headers={"content-type": "application/json", **headers})


def fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json()["detail"]]


# --- finding 1: typed parameters per fault -------------------------------------------------------------

LATENCY_BAD = ['"abc"', "true", "NaN", "Infinity", "-1", str(MAX_DELAY_MS + 1), "1e12", "9" * 400, "null"]
RATE_BAD = ['"0.5"', "true", "NaN", "-0.1", "1.5", "[1]", "{}"]
FAULT_PARAM = {
    ("ml_api", "latency"): "delay_ms",
    ("ml_api", "errors"): "rate",
    ("rag_api", "latency"): "delay_ms",
    ("rag_api", "hallucination"): "rate",
    ("rag_api", "evaluation_failure"): "rate",
}


@pytest.mark.parametrize(("service", "fault"), list(FAULT_PARAM))
def test_every_fault_refuses_bad_parameters_naming_the_field(
    services: dict[str, TestClient], service: str, fault: str
) -> None:
    client = services[service]
    param = FAULT_PARAM[(service, fault)]
    for value in LATENCY_BAD if param == "delay_ms" else RATE_BAD:
        body = f'{{"duration_seconds": 5, "params": {{"{param}": {value}}}}}'
        response = post_raw(client, f"/admin/faults/{fault}", body)
        assert response.status_code == 422, (service, fault, value, response.text)
        assert fields(response) == [f"params.{param}"], response.text
    unknown = post_raw(client, f"/admin/faults/{fault}", '{"params": {"' + param + '": 0.5, "extra": 1}}')
    assert unknown.status_code == 422 and fields(unknown) == ["params.extra"], unknown.text
    assert client.get("/admin/faults").json()["active"] == []  # nothing was switched on
    good = post_raw(
        client, f"/admin/faults/{fault}", f'{{"duration_seconds": 5, "params": {{"{param}": 0.5}}}}'
    )
    assert good.status_code == 200, good.text
    assert good.json()["params"] == {param: 0.5}
    client.delete("/admin/faults/all")


@pytest.mark.parametrize("duration", ['"60"', "true", "NaN", "0", "-5", "null"])
def test_fault_duration_is_a_strict_positive_number(services: dict[str, TestClient], duration: str) -> None:
    response = post_raw(
        services["ml_api"],
        "/admin/faults/latency",
        f'{{"duration_seconds": {duration}, "params": {{"delay_ms": 5}}}}',
    )
    assert response.status_code == 422, response.text
    assert fields(response) == ["duration_seconds"]


def test_fault_request_has_no_unknown_keys(services: dict[str, TestClient]) -> None:
    response = post_raw(services["ml_api"], "/admin/faults/errors", '{"rate": 1, "params": {}}')
    assert response.status_code == 422 and fields(response) == ["rate"], response.text


def test_fault_list_describes_each_faults_parameters(services: dict[str, TestClient]) -> None:
    listing = services["rag_api"].get("/admin/faults").json()
    assert set(listing["params"]) == set(listing["known"])
    assert listing["params"]["latency"]["properties"]["delay_ms"]["maximum"] == MAX_DELAY_MS


def test_refused_fault_parameters_leave_predictions_working(ml: TestClient) -> None:
    """The reproduction: delay_ms "abc" was accepted, then every /predict answered 500."""
    for body in ('{"params": {"delay_ms": "abc"}}', '{"params": {"delay_ms": NaN}}', '{"params": {}}'):
        assert post_raw(ml, "/admin/faults/latency", body).status_code == 422
        for path, payload in (("/predict", TICKET), ("/predict/batch", {"tickets": [TICKET]})):
            assert ml.post(path, json=payload).status_code == 200


# --- finding 2: injected sleeps end with their fault ---------------------------------------------------


def timed_predict(client: TestClient, result: dict[str, Any]) -> None:
    started = time.monotonic()
    result["status"] = client.post("/predict", json=TICKET).status_code
    result["seconds"] = time.monotonic() - started


def test_a_deleted_fault_ends_the_sleeps_it_injected(model_dir: Path) -> None:
    with ml_client(model_dir, max_fault_seconds=120.0) as client:
        on = client.post(
            "/admin/faults/latency", json={"duration_seconds": 120, "params": {"delay_ms": MAX_DELAY_MS}}
        )
        assert on.status_code == 200, on.text
        result: dict[str, Any] = {}
        sleeper = threading.Thread(target=timed_predict, args=(client, result))
        sleeper.start()
        time.sleep(0.5)
        assert client.delete("/admin/faults/latency").status_code == 200
        sleeper.join(timeout=70)
        assert result["status"] == 200
        assert result["seconds"] < 5, f"the request slept {result['seconds']:.1f} s after its fault ended"


def test_an_injected_sleep_never_outlasts_its_fault(ml: TestClient) -> None:
    # ml's faults last at most FAULT_SECONDS (max_fault_seconds), whatever duration_seconds asks for.
    on = ml.post(
        "/admin/faults/latency", json={"duration_seconds": 600, "params": {"delay_ms": MAX_DELAY_MS}}
    )
    assert on.json()["remaining_seconds"] <= FAULT_SECONDS
    result: dict[str, Any] = {}
    timed_predict(ml, result)
    assert result["status"] == 200 and result["seconds"] < FAULT_SECONDS + 2, result


def test_replacing_a_fault_ends_the_old_sleeps(model_dir: Path) -> None:
    with ml_client(model_dir, max_fault_seconds=120.0) as client:
        client.post(
            "/admin/faults/latency", json={"duration_seconds": 120, "params": {"delay_ms": MAX_DELAY_MS}}
        )
        result: dict[str, Any] = {}
        sleeper = threading.Thread(target=timed_predict, args=(client, result))
        sleeper.start()
        time.sleep(0.5)
        client.post("/admin/faults/latency", json={"duration_seconds": 120, "params": {"delay_ms": 10}})
        sleeper.join(timeout=70)
        client.delete("/admin/faults/all")
        assert result["seconds"] < 5, result


# --- finding 3: the admin token compared as bytes ------------------------------------------------------


@pytest.mark.parametrize("token", [b"\xe9", "s3crét".encode(), b"s3cret\xff", b"\xc3("])
def test_a_non_ascii_admin_token_is_refused_not_a_server_error(model_dir: Path, token: bytes) -> None:
    client = ml_client(model_dir, lab_profile=False, admin_token="s3cret", faults_enabled=True)
    for method, path in (("GET", "/admin/faults"), ("POST", "/drift/reset"), ("DELETE", "/admin/faults/all")):
        response = client.request(method, path, headers={"X-Admin-Token": token})
        assert response.status_code == 401, (path, token, response.status_code)
    assert client.get("/admin/faults", headers={"X-Admin-Token": "s3cret"}).status_code == 200


def test_a_non_ascii_configured_token_matches_its_utf8_bytes(model_dir: Path) -> None:
    client = ml_client(model_dir, lab_profile=False, admin_token="clé-secrète")
    assert client.get("/admin/faults", headers={"X-Admin-Token": "clé-secrète".encode()}).status_code == 200
    assert client.get("/admin/faults", headers={"X-Admin-Token": "cle-secrete"}).status_code == 401


# --- finding 17: malformed JSON is located at the body; HEAD on the probes ------------------------------


@pytest.mark.parametrize("body", ['{"ticket_length": 640,', "{bad json}", "[1, 2", '{"a": 1} trailing'])
def test_malformed_json_names_the_body_and_gives_the_offset_in_the_message(
    services: dict[str, TestClient], body: str
) -> None:
    for service, path in (("ml_api", "/predict"), ("rag_api", "/chat")):
        response = post_raw(services[service], path, body)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["field"] == "body", error
        assert error["type"] == "json_invalid"
        assert "invalid JSON at character" in error["message"], error


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probes_answer_head(services: dict[str, TestClient], path: str) -> None:
    for client in services.values():
        head = client.head(path)
        assert head.status_code == client.get(path).status_code, (path, head.status_code)
        assert head.content == b""


def test_head_routes_stay_out_of_the_schema(services: dict[str, TestClient]) -> None:
    paths = services["ml_api"].get("/openapi.json").json()["paths"]
    assert "head" not in paths["/health"] and "get" in paths["/health"]


# --- property: no input to the fault API gives a 5xx, no accepted input breaks a later request ----------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["60", "1e400"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
param_keys = st.sampled_from(["delay_ms", "rate", "extra"]) | st.text(max_size=6)
params = st.dictionaries(param_keys, json_values | st.floats(0, 1) | st.integers(0, 70_000), max_size=3)
# Near-valid bodies (numbers around the bounds, one parameter each) get accepted often; the rest is noise.
near_valid = st.fixed_dictionaries(
    {
        "duration_seconds": st.floats(-1, 5) | st.integers(-1, 5),
        "params": st.fixed_dictionaries({"delay_ms": st.floats(-1, 70_000) | st.integers(-1, 70_000)})
        | st.fixed_dictionaries({"rate": st.floats(-0.5, 1.5)})
        | st.just({}),
    }
)
bodies = st.one_of(
    near_valid,
    near_valid,
    near_valid,
    st.fixed_dictionaries(
        {}, optional={"duration_seconds": json_values | st.floats(0, 5), "params": params | json_values}
    ),
)
known_names = st.sampled_from(["latency", "errors", "latency", "errors", "all"])
names = st.one_of(
    known_names,
    known_names,
    known_names,
    st.text(string.ascii_letters + string.digits + "-_~", min_size=1, max_size=10),
)


@settings(max_examples=200, deadline=None)
@given(name=names, body=bodies, method=st.sampled_from(["POST", "POST", "DELETE", "GET"]))
def test_fault_api_property(ml: TestClient, name: str, body: dict[str, Any], method: str) -> None:
    raw = json.dumps(body)  # NaN and Infinity go out as written: a lenient JSON parser would take them
    response = ml.request(
        method, f"/admin/faults/{name}", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, (name, raw, response.text)
    event(f"{method} {response.status_code}")  # --hypothesis-show-statistics: how many were accepted
    try:
        if method == "POST" and response.status_code == 200:
            active = response.json()
            assert active["remaining_seconds"] <= FAULT_SECONDS
            assert all(isinstance(v, float) and math.isfinite(v) for v in active["params"].values())
            started = time.monotonic()
            later = ml.post("/predict", json=TICKET)
            assert later.status_code == 200 or (later.status_code == 503 and name == "errors"), later.text
            assert time.monotonic() - started < FAULT_SECONDS + 2  # a sleep never outlasts its fault
            assert ml.get("/admin/faults").status_code == 200
    finally:
        ml.delete("/admin/faults/all")
