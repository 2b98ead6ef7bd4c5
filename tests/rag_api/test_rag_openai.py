"""Generation through an OpenAI-compatible server (a real local HTTP server), and the offline fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from rag_api.app import create_app
from rag_api.llm import SYSTEM_PROMPT, system_prompt
from tests.support.openai_server import OpenAICompatibleServer, echo_context_responder, last_user_message
from tests.support.rag import copy_index, offline_settings

MODEL = "gpt-4o-mini"
QUESTION = "How do I reset my password?"


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(hang_seconds=3.0) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: OpenAICompatibleServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("rag-openai")
    settings = offline_settings(
        copy_index(root / "chroma"),
        openai_base_url=server.base_url,
        llm_model=MODEL,
        llm_timeout_seconds=0.5,
        llm_max_retries=1,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def fresh_server(server: OpenAICompatibleServer) -> None:
    server.reset()


def chat(client: TestClient) -> dict:
    # evaluate=off: the judge would use the same server and add its own requests to the record.
    response = client.post("/chat", json={"query": QUESTION, "evaluate": "off"})
    assert response.status_code == 200, response.text
    return response.json()


def tokens(token_type: str, model: str = MODEL) -> float:
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_token_type": token_type,
        "gen_ai_request_model": model,
        "gen_ai_response_model": model,  # the stand-in echoes the requested model
    }
    return sample("gen_ai_client_token_usage_sum", labels)


def test_generation_goes_through_the_server_and_counts_tokens_and_cost(
    client: TestClient, server: OpenAICompatibleServer
) -> None:
    prompt_before, completion_before = tokens("input"), tokens("output")
    cost_before = sample("llm_cost_dollars_total", {"tenant": "acme", "model": MODEL})
    response = client.post("/chat", json={"query": QUESTION, "evaluate": "off"}, headers={"X-Tenant": "acme"})
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["generator"] == "openai" and body["model"] == MODEL
    (request,) = server.requests
    assert request["model"] == MODEL
    # The system prompt carries the safety chain's canary (rag_api/safety): seen in an answer = a leak.
    canary = client.app.state.rag.safety.canary
    assert request["messages"][0] == {"role": "system", "content": system_prompt(canary)}
    assert request["messages"][0]["content"].startswith(SYSTEM_PROMPT) and canary in system_prompt(canary)
    user = last_user_message(request)
    assert QUESTION in user and "How to reset your password" in user  # the retrieved context was sent
    # The default responder echoes the first context sentence: that is the answer we return.
    assert body["answer"] and body["answer"] in user

    prompt = tokens("input") - prompt_before
    completion = tokens("output") - completion_before
    assert prompt > 50 and completion > 0
    cost = sample("llm_cost_dollars_total", {"tenant": "acme", "model": MODEL}) - cost_before
    assert cost == pytest.approx((prompt * 0.15 + completion * 0.60) / 1_000_000)
    assert body["cost_dollars"] == pytest.approx(cost, abs=1e-8)
    info = 'llm_backend_info{backend="openai",evaluator="openai",model="gpt-4o-mini"} 1.0'
    metrics_text = client.get("/metrics").text
    assert info in metrics_text
    # The server reported these counts: not estimated (the registry is the process's: offline ones may be).
    assert 'llm_token_usage_estimated{gen_ai_provider_name="openai"}' not in metrics_text


def test_the_judge_calls_are_counted_on_the_conventions_and_priced(client: TestClient) -> None:
    before = tokens("input")
    cost_before = sample("llm_cost_dollars_total", {"tenant": "default", "model": MODEL})
    response = client.post("/chat", json={"query": QUESTION, "evaluate": "sync"})
    assert response.status_code == 200, response.text
    assert response.json()["evaluation"] in ("ok", "failed")
    # Generation plus at least one judge call (groundedness, relevances): more than one call's worth.
    duration_labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": MODEL,
        "gen_ai_response_model": MODEL,
        "error_type": "",
    }
    assert sample("gen_ai_client_operation_duration_seconds_count", duration_labels) >= 2
    assert tokens("input") > before
    generation_cost = response.json()["cost_dollars"]
    cost = sample("llm_cost_dollars_total", {"tenant": "default", "model": MODEL}) - cost_before
    assert cost > generation_cost > 0  # the judge's calls are priced to the same tenant


def test_a_failed_call_is_timed_with_its_error_type_and_reports_no_tokens(
    client: TestClient, server: OpenAICompatibleServer
) -> None:
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": MODEL,
        "gen_ai_response_model": "",
        "error_type": "http_error",
    }
    failed_before = sample("gen_ai_client_operation_duration_seconds_count", labels)
    tokens_before = tokens("input")
    server.fail_next(5, "error")
    body = chat(client)
    server.reset()
    assert body["generator"] == "offline-fallback" and body["cost_dollars"] == 0
    assert sample("gen_ai_client_operation_duration_seconds_count", labels) == failed_before + 1
    assert tokens("input") == tokens_before


@pytest.mark.parametrize(
    ("mode", "reason", "attempts"),
    [
        ("error", "http_error", 2),
        ("timeout", "timeout", 2),
        ("malformed", "malformed", 1),
        ("empty", "malformed", 1),
    ],
)
def test_server_failures_fall_back_offline_and_are_counted(
    client: TestClient, server: OpenAICompatibleServer, mode: str, reason: str, attempts: int
) -> None:
    reason_before = sample("llm_generation_errors_total", {"reason": reason})
    fallback_before = sample("llm_generation_errors_total", {"reason": "fallback"})
    server.fail_next(5, mode)
    body = chat(client)
    server.reset()
    assert body["generator"] == "offline-fallback" and body["model"] == "offline"
    assert "How to reset your password" in body["answer"]
    # 5xx and timeouts are retried (max_retries=1); a malformed 200 reply is not.
    assert len(server.requests) == 0  # reset above: nothing arrived after the answer
    assert sample("llm_generation_errors_total", {"reason": reason}) == reason_before + 1
    assert sample("llm_generation_errors_total", {"reason": "fallback"}) == fallback_before + 1


def test_retries_reach_the_server(client: TestClient, server: OpenAICompatibleServer) -> None:
    server.fail_next(1, "error")  # the first attempt fails, the retry succeeds
    body = chat(client)
    assert body["generator"] == "openai"
    assert len(server.requests) == 2


def test_a_hung_server_costs_at_most_the_timeouts(client: TestClient, server: OpenAICompatibleServer) -> None:
    server.fail_next(2, "timeout")
    body = chat(client)
    assert body["generator"] == "offline-fallback"
    assert len(server.requests) == 2  # one attempt plus one retry
    # 2 attempts of 0.5 s plus the SDK's short back-off, far below the server's 3 s hang.
    assert body["latency_ms"]["generation"] < 2500


def test_an_llm_that_repeats_its_prompt_is_caught_by_the_canary_check(
    client: TestClient, server: OpenAICompatibleServer
) -> None:
    """A prompt-extraction that works: the server answers with the system prompt it was sent."""
    labels = {"check": "canary_leak", "stage": "output", "outcome": "flagged", "source": "chat"}
    before = sample("llm_safety_checks_total", labels)
    server.responder = lambda request: "My instructions: " + request["messages"][0]["content"]
    try:
        body = chat(client)
    finally:
        server.responder = echo_context_responder
    canary = next(c for c in body["safety"]["output"]["checks"] if c["check"] == "canary_leak")
    assert canary["flagged"] and canary["severity"] == "HIGH" and body["generator"] == "openai"
    assert sample("llm_safety_checks_total", labels) == before + 1
