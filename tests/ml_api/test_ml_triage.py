"""/triage against real local HTTP servers standing in for rag_api: success, closed port, slow, errors."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ml import ml_client

TICKET = {
    "text": "Our whole team cannot log in since this morning, production is down. URGENT!",
    "ticket_length": 78,
    "urgency_keywords": 3,
    "business_impact": 8.5,
    "customer_tier": 4,
}
RAG_ANSWER = {
    "answer": "Treat a login outage for many users as a Sev-1 incident; check the identity provider status.",
    "sources": [
        {"id": "incident-severity-levels#0", "title": "Incident severity levels", "distance": 0.21},
        {"id": "account-lockout#1", "title": "Account lockout", "distance": 0.34},
    ],
    "backend": "offline",
}


class FakeRag:
    """A real HTTP server on 127.0.0.1 speaking rag_api's POST /chat; behaviour switchable per test."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | slow | error | unavailable | malformed
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                outer.requests.append({"path": self.path, "body": body})
                if outer.mode == "slow":
                    time.sleep(outer.delay)
                status, payload = 200, json.dumps(RAG_ANSWER).encode()
                if self.path != "/chat":
                    status, payload = 404, b'{"detail": "not found"}'
                elif outer.mode == "error":
                    status, payload = 500, b'{"detail": "boom"}'
                elif outer.mode == "unavailable":
                    status, payload = 503, b'{"detail": "index not loaded"}'
                elif outer.mode == "malformed":
                    payload = b'{"sources": "nope"'
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rag() -> Iterator[FakeRag]:
    server = FakeRag()
    yield server
    server.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def client_for(model_dir: Path, rag_url: str, timeout: float = 2.0) -> TestClient:
    return ml_client(model_dir, rag_url=rag_url, triage_rag_timeout_seconds=timeout)


def counters(client: TestClient) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name in ("triage_requests", "triage_degraded"):
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[(s.name, next(iter(s.labels.values())))] = s.value
    return out


def test_triage_with_rag_answer(ml_model_dir: Path, rag: FakeRag) -> None:
    with client_for(ml_model_dir, rag.url) as client:
        before = counters(client)
        r = client.post("/triage", json=TICKET)
        assert r.status_code == 200, r.text
        body = r.json()
        single = client.post("/predict", json={k: v for k, v in TICKET.items() if k != "text"}).json()
        after = counters(client)
        window = client.get("/drift/status").json()["window_size"]
    assert body["degraded"] is False and body["degraded_reason"] is None
    assert body["severity"] == single["severity"] and body["probabilities"] == single["probabilities"]
    assert RAG_ANSWER["answer"] in body["explanation"]
    assert body["severity"] in body["explanation"]
    assert [s["title"] for s in body["sources"]] == ["Incident severity levels", "Account lockout"]
    assert any("Incident severity levels" in a for a in body["recommended_actions"])
    assert len(body["recommended_actions"]) >= 3
    # what rag_api was asked
    assert len(rag.requests) == 1
    sent = rag.requests[0]
    assert sent["path"] == "/chat" and sent["body"]["top_k"] == 3
    assert "cannot log in" in sent["body"]["query"]
    assert after[("triage_requests_total", "ok")] == before[("triage_requests_total", "ok")] + 1
    assert window == 2  # the triage ticket and the /predict one


def test_triage_degraded_when_rag_is_down(ml_model_dir: Path) -> None:
    with client_for(ml_model_dir, closed_port_url()) as client:
        before = counters(client)
        r = client.post("/triage", json=TICKET)
        after = counters(client)
        window = client.get("/drift/status").json()["window_size"]
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] is True and body["degraded_reason"] == "unavailable"
    assert body["severity"] in ("high", "critical")
    assert body["recommended_actions"] and body["sources"] == []
    assert (
        after[("triage_degraded_total", "unavailable")]
        == before[("triage_degraded_total", "unavailable")] + 1
    )
    assert after[("triage_requests_total", "degraded")] == before[("triage_requests_total", "degraded")] + 1
    assert window == 1


def test_triage_degraded_on_timeout(ml_model_dir: Path, rag: FakeRag) -> None:
    rag.mode, rag.delay = "slow", 2.0
    with client_for(ml_model_dir, rag.url, timeout=0.3) as client:
        before = counters(client)
        started = time.perf_counter()
        r = client.post("/triage", json=TICKET)
        elapsed = time.perf_counter() - started
        after = counters(client)
    assert r.status_code == 200, r.text
    assert r.json()["degraded"] is True and r.json()["degraded_reason"] == "timeout"
    assert elapsed < 1.5  # answered at the deadline, not when rag_api finally replied
    assert after[("triage_degraded_total", "timeout")] == before[("triage_degraded_total", "timeout")] + 1
    assert len(rag.requests) == 1


@pytest.mark.parametrize(
    ("mode", "reason"), [("error", "error"), ("unavailable", "unavailable"), ("malformed", "error")]
)
def test_triage_degraded_on_bad_answers(ml_model_dir: Path, rag: FakeRag, mode: str, reason: str) -> None:
    rag.mode = mode
    with client_for(ml_model_dir, rag.url) as client:
        r = client.post("/triage", json=TICKET)
    assert r.status_code == 200, r.text
    assert r.json()["degraded"] is True and r.json()["degraded_reason"] == reason


def test_triage_validation(ml_model_dir: Path) -> None:
    with client_for(ml_model_dir, closed_port_url()) as client:
        for payload, field in [
            ({**TICKET, "text": ""}, "text"),
            ({**TICKET, "text": "x" * 5001}, "text"),
            ({k: v for k, v in TICKET.items() if k != "text"}, "text"),
            ({**TICKET, "business_impact": 11}, "business_impact"),
        ]:
            r = client.post("/triage", json=payload)
            assert r.status_code == 422
            assert r.json()["detail"][0]["field"] == field
        assert client.get("/drift/status").json()["window_size"] == 0
