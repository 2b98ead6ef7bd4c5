"""rag_api end to end, offline (no key): real Chroma in a tmp dir, real embedder, real scorer, TestClient."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_api.app import create_app
from tests.support.metrics import sample
from tests.support.rag import copy_index, offline_settings

PASSWORD_QUESTION = "How do I reset my password?"  # pragma: allowlist secret (a question)

# Every rag_api metric of docs/metrics.md, by type.
CONTRACT_HISTOGRAMS = [
    "rag_http_request_duration_seconds",
    "rag_chat_duration_seconds",
    "rag_retrieval_duration_seconds",
    "rag_retrieval_distance",
    "llm_generation_duration_seconds",
    "llm_evaluation_duration_seconds",
    "llm_groundedness_score",
    "llm_hallucination_score",
    "llm_context_relevance_score",
    "llm_answer_relevance_score",
    "gen_ai_client_token_usage",
    "gen_ai_client_operation_duration_seconds",
]
CONTRACT_COUNTERS = [
    "llm_cost_dollars_total",
    "rag_http_requests_total",
    "rag_chat_requests_total",
    "llm_generation_errors_total",
    "llm_evaluations_total",
]
CONTRACT_GAUGES = [
    "rag_knowledge_base_chunks",
    "llm_evaluation_queue_depth",
    "llm_embedding_drift_score",
    "llm_backend_info",
    "llm_token_usage_estimated",
    "llm_tenant_daily_budget_dollars",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("rag-api")
    settings = offline_settings(copy_index(root / "chroma"))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def chat(client: TestClient, query: str, **extra: object) -> dict:
    response = client.post("/chat", json={"query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_password_question_is_answered_from_the_password_article(client: TestClient) -> None:
    body = chat(client, PASSWORD_QUESTION, evaluate="off")
    assert body["generator"] == "offline"
    assert body["sources"], body
    assert body["sources"][0]["article_id"] == "reset-password"
    answer = body["answer"]
    assert "How to reset your password" in answer  # the citation
    # The answer is made of the article's own sentences, and talks about resetting the password.
    article = Path("rag_api/knowledge/reset-password.md").read_text()
    text = answer.split("\n\nSources:")[0]
    assert "password" in text.lower() and "reset" in text.lower()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    assert 2 <= len(sentences) <= 6
    assert all(s.replace("**", "")[:40] in article.replace("**", "") for s in sentences), sentences
    latency = body["latency_ms"]
    assert latency["total"] >= latency["retrieval"] > 0 and latency["generation"] > 0


def test_offline_answers_are_deterministic(client: TestClient) -> None:
    first = chat(client, "Which authenticator apps can I use?", evaluate="off")
    second = chat(client, "Which authenticator apps can I use?", evaluate="off")
    assert first["answer"] == second["answer"]


def test_sync_evaluation_returns_scores_and_records_every_metric(client: TestClient) -> None:
    ok_before = sample("llm_evaluations_total", {"result": "ok"})
    grounded_before = sample("llm_groundedness_score_count")
    body = chat(client, PASSWORD_QUESTION, evaluate="sync")
    scores = body["scores"]
    assert body["evaluation"] == "ok" and scores is not None
    assert all(0.0 <= scores[k] <= 1.0 for k in scores)
    assert scores["hallucination"] == pytest.approx(1 - scores["groundedness"])
    assert scores["groundedness"] > 0.6, scores  # an extractive answer is grounded in its context
    assert body["latency_ms"]["evaluation"] > 0
    assert sample("llm_evaluations_total", {"result": "ok"}) == ok_before + 1
    assert sample("llm_groundedness_score_count") == grounded_before + 1

    chat(client, "What happens when a payment fails?", evaluate="async")
    exposition = client.get("/metrics").text
    for name in CONTRACT_HISTOGRAMS:
        assert re.search(rf"^{name}_bucket\{{", exposition, re.M), f"{name} missing"
    for name in CONTRACT_COUNTERS + CONTRACT_GAUGES:
        assert re.search(rf"^{name}(\{{| )", exposition, re.M), f"{name} missing"
    assert 'llm_backend_info{backend="offline",evaluator="offline",model="offline"} 1.0' in exposition
    assert re.search(r"^rag_knowledge_base_chunks \d+", exposition, re.M)
    assert 'rag_chat_requests_total{status="ok"}' in exposition


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_metrics_exposition_passes_promtool(client: TestClient) -> None:
    chat(client, PASSWORD_QUESTION, evaluate="sync")
    exposition = client.get("/metrics").text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 2001}, "query"),
        ({}, "query"),
        ({"query": 42}, "query"),
        ({"query": ["a"]}, "query"),
        ({"query": "hi", "top_k": 0}, "top_k"),
        ({"query": "hi", "top_k": 11}, "top_k"),
        ({"query": "hi", "top_k": "3"}, "top_k"),
        ({"query": "hi", "top_k": 2.5}, "top_k"),
        ({"query": "hi", "top_k": True}, "top_k"),
        ({"query": "hi", "evaluate": "later"}, "evaluate"),
        ({"query": "hi", "session_id": "s" * 129}, "session_id"),
        ({"query": "hi", "session_id": 7}, "session_id"),
        ({"query": "hi", "temperature": 1}, "temperature"),
    ],
)
def test_invalid_chat_requests_are_422_naming_the_field(
    client: TestClient, payload: dict, field: str
) -> None:
    response = client.post("/chat", json=payload)
    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["detail"]}, response.json()


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    response = client.post("/chat", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_longest_valid_query_and_session_id_are_accepted(client: TestClient) -> None:
    body = chat(client, "password " * 222, top_k=10, session_id="s" * 128, evaluate="off")
    assert len(body["sources"]) == 10
    assert body["session_id"] == "s" * 128


def test_session_id_never_becomes_a_label(client: TestClient) -> None:
    chat(client, PASSWORD_QUESTION, session_id="unique-session-4242", evaluate="off")
    assert "unique-session-4242" not in client.get("/metrics").text


def test_hallucination_fault_produces_ungrounded_answers(client: TestClient) -> None:
    honest = chat(client, PASSWORD_QUESTION, evaluate="sync")
    client.post("/admin/faults/hallucination", json={"duration_seconds": 60, "params": {"rate": 1.0}})
    try:
        faulty = chat(client, PASSWORD_QUESTION, evaluate="sync")
    finally:
        client.delete("/admin/faults/all")
    assert faulty["sources"] == honest["sources"]  # same retrieval, same citations...
    assert "How to reset your password" in faulty["answer"]
    assert faulty["answer"] != honest["answer"]  # ...but the claims come from elsewhere
    assert faulty["scores"]["groundedness"] < honest["scores"]["groundedness"] - 0.3, (honest, faulty)


def test_evaluation_failure_fault_counts_failed_and_records_no_score(client: TestClient) -> None:
    failed_before = sample("llm_evaluations_total", {"result": "failed"})
    grounded_before = sample("llm_groundedness_score_count")
    client.post("/admin/faults/evaluation_failure", json={"params": {"rate": 1.0}})
    try:
        body = chat(client, PASSWORD_QUESTION, evaluate="sync")
    finally:
        client.delete("/admin/faults/evaluation_failure")
    assert body["evaluation"] == "failed" and body["scores"] is None
    assert "evaluation_failure" in body["evaluation_error"]
    assert sample("llm_evaluations_total", {"result": "failed"}) == failed_before + 1
    assert sample("llm_groundedness_score_count") == grounded_before


def test_latency_fault_delays_generation(client: TestClient) -> None:
    client.post("/admin/faults/latency", json={"params": {"delay_ms": 300}})
    try:
        body = chat(client, PASSWORD_QUESTION, evaluate="off")
    finally:
        client.delete("/admin/faults/latency")
    assert body["latency_ms"]["generation"] >= 300
    assert chat(client, PASSWORD_QUESTION, evaluate="off")["latency_ms"]["generation"] < 300


def test_knowledge_stats_ready_and_drift_endpoints(client: TestClient) -> None:
    stats = client.get("/knowledge/stats").json()
    assert stats["articles"] >= 32 and stats["chunks"] >= stats["articles"]
    assert stats["collection"] == "knowledge" and "MiniLM" in stats["embedding_model"]
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    drift = client.get("/drift/embedding").json()
    assert {"window_size", "score", "threshold", "drifted", "window_samples"} <= set(drift)
    assert drift["window_samples"] > 0


def test_reload_is_admin_protected_without_lab_profile(tmp_path: Path) -> None:
    settings = offline_settings(copy_index(tmp_path / "chroma"), lab_profile=False, admin_token="s3cret")
    with TestClient(create_app(settings)) as locked:
        assert locked.post("/knowledge/reload").status_code == 401
        response = locked.post("/knowledge/reload", headers={"X-Admin-Token": "s3cret"})
        assert response.status_code == 200, response.text
        assert response.json()["added"] == 0 and response.json()["removed"] == 0
