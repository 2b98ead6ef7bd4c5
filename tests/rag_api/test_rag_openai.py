"""Generation and judging through an OpenAI-compatible server (a real local HTTP server), and the fallback.

The tests of the protocol itself (usage fields, the judge, a 429 and its retries) run against two servers:
our stand-in and LiteLLM's proxy (tests/support/openai_backends.py). The failure modes only the stand-in
can produce on demand (5xx, hangs, malformed bodies) and the prompt's content, which only it records, use
it alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from rag_api.app import create_app
from rag_api.evaluation import EvaluationError, build_evaluator
from rag_api.llm import SYSTEM_PROMPT, system_prompt
from rag_api.settings import ModelPrice, RAGSettings
from rag_api.usage import LLMCall, UsageMeter
from tests.support.litellm_proxy import LiteLLMProxy
from tests.support.openai_backends import BACKENDS, LiteLLMBackend, OpenAIBackend, StandInBackend
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


def test_generation_sends_the_prompt_and_context_to_the_server(
    client: TestClient, server: OpenAICompatibleServer
) -> None:
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
        ("rate_limit", "rate_limited", 2),
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


# -- the same protocol against two servers: ours and LiteLLM's proxy -----------------------------------------

MAX_RETRIES = 1
JUDGE_PRICE = ModelPrice(prompt=1.0, completion=2.0)  # the judge model is priced too, to see its cost land


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[OpenAIBackend]:
    if request.param == "litellm":
        yield LiteLLMBackend(request.getfixturevalue("litellm_proxy"))
        return
    stand_in = StandInBackend()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def backend_client(backend: OpenAIBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp(f"rag-{backend.name}")
    settings = offline_settings(
        copy_index(root / "chroma"),
        openai_base_url=backend.base_url,
        openai_api_key=backend.api_key,  # LiteLLM refuses a request without its key
        llm_model=backend.generation_model,
        judge_model=backend.judge_model,
        llm_timeout_seconds=5.0,
        llm_max_retries=MAX_RETRIES,
        price_table={MODEL: ModelPrice(prompt=0.15, completion=0.60), backend.judge_model: JUDGE_PRICE},
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def seen(backend: OpenAIBackend) -> OpenAIBackend:
    """The backend with its traffic counts started afresh for this test."""
    backend.reset()
    return backend


def test_generation_counts_the_usage_the_server_reported_and_prices_it(
    backend_client: TestClient, seen: OpenAIBackend
) -> None:
    prompt_before, completion_before = tokens("input"), tokens("output")
    cost_before = sample("llm_cost_dollars_total", {"tenant": "acme", "model": MODEL})
    response = backend_client.post(
        "/chat", json={"query": QUESTION, "evaluate": "off"}, headers={"X-Tenant": "acme"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generator"] == "openai" and body["model"] == MODEL and body["answer"]

    # The histograms hold what the server's `usage` said, not an estimate of ours.
    ((prompt, completion),) = seen.served_usage()
    assert tokens("input") - prompt_before == prompt > 0
    assert tokens("output") - completion_before == completion > 0
    cost = sample("llm_cost_dollars_total", {"tenant": "acme", "model": MODEL}) - cost_before
    assert cost == pytest.approx((prompt * 0.15 + completion * 0.60) / 1_000_000)
    assert body["cost_dollars"] == pytest.approx(cost, abs=1e-8)
    metrics_text = backend_client.get("/metrics").text
    assert f'llm_backend_info{{backend="openai",evaluator="openai",model="{MODEL}"}} 1.0' in metrics_text
    assert 'llm_token_usage_estimated{gen_ai_provider_name="openai"}' not in metrics_text


def test_the_judge_scores_the_answer_and_its_calls_are_counted_and_priced(
    backend_client: TestClient, seen: OpenAIBackend
) -> None:
    judge = seen.judge_model
    duration_labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": judge,
        "gen_ai_response_model": judge,
        "error_type": "",
    }
    calls_before = sample("gen_ai_client_operation_duration_seconds_count", duration_labels)
    input_before, output_before = tokens("input", judge), tokens("output", judge)
    cost_before = sample("llm_cost_dollars_total", {"tenant": "default", "model": judge})
    response = backend_client.post("/chat", json={"query": QUESTION, "evaluate": "sync"})
    assert response.status_code == 200, response.text
    body = response.json()

    # Both servers' judge model grades everything 3 of 3: the verdict TruLens parsed is full marks.
    assert body["evaluation"] == "ok", body["evaluation_error"]
    scores = body["scores"]
    assert scores["groundedness"] == scores["context_relevance"] == scores["answer_relevance"] == 1.0
    _generation, *judged = seen.served_usage()  # the answer first, then the judge's calls
    assert len(judged) >= 3  # groundedness (split, then grade) and a relevance per chunk and for the answer
    assert sample("gen_ai_client_operation_duration_seconds_count", duration_labels) - calls_before == len(
        judged
    )
    judge_input, judge_output = sum(p for p, _ in judged), sum(c for _, c in judged)
    assert tokens("input", judge) - input_before == judge_input
    assert tokens("output", judge) - output_before == judge_output
    cost = sample("llm_cost_dollars_total", {"tenant": "default", "model": judge}) - cost_before
    assert cost == pytest.approx(
        (judge_input * JUDGE_PRICE.prompt + judge_output * JUDGE_PRICE.completion) / 1e6
    )


def test_a_rate_limited_generation_is_retried_counted_and_answered_offline(
    backend_client: TestClient, seen: OpenAIBackend
) -> None:
    generator = backend_client.app.state.rag.generator.openai
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "openai",
        "gen_ai_request_model": seen.rate_limited_model,
        "gen_ai_response_model": "",
        "error_type": "rate_limited",
    }
    failed_before = sample("gen_ai_client_operation_duration_seconds_count", labels)
    reason_before = sample("llm_generation_errors_total", {"reason": "rate_limited"})
    generator.model = seen.rate_limited_model  # the same app, its generator pointed at the 429 model
    try:
        body = chat(backend_client)
    finally:
        generator.model = seen.generation_model
    assert body["generator"] == "offline-fallback" and body["cost_dollars"] == 0
    # The SDK retries a 429 as configured (max_retries), then the call fails once, as rate_limited.
    assert seen.rate_limited_attempts() == 1 + MAX_RETRIES
    assert sample("gen_ai_client_operation_duration_seconds_count", labels) == failed_before + 1
    assert sample("llm_generation_errors_total", {"reason": "rate_limited"}) == reason_before + 1
    assert tokens("input", seen.rate_limited_model) == 0  # a failed call reports no usage


def test_a_rate_limited_judge_raises_and_reports_its_failed_calls(seen: OpenAIBackend) -> None:
    evaluator = build_evaluator(
        api_key=seen.api_key,
        base_url=seen.base_url,
        model=seen.rate_limited_model,
        timeout=5.0,
        max_retries=1,
    )
    with pytest.raises(EvaluationError) as caught:
        evaluator.score(QUESTION, ["Open Settings, then Security, to reset your password."], "Use Settings.")
    calls = caught.value.calls  # type: ignore[attr-defined]
    assert calls and all(c.error_type == "rate_limited" and c.input_tokens == 0 for c in calls)
    assert seen.rate_limited_attempts() == len(calls) * 2  # each judge call: one attempt and one retry


def test_our_price_for_the_generation_model_is_litellms(litellm_proxy: LiteLLMProxy) -> None:
    """LiteLLM prices every answer from its own price map (header x-litellm-response-cost): our default
    price table must agree with it for the default model, or the lab's cost panels would lie."""
    response = httpx.post(
        f"{litellm_proxy.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {litellm_proxy.api_key}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    call = LLMCall("openai", MODEL, MODEL, usage["prompt_tokens"], usage["completion_tokens"], 0.1)
    defaults = RAGSettings.model_fields["price_table"].get_default(call_default_factory=True)
    ours = UsageMeter(RAGSettings(price_table=defaults)).cost(
        call
    )  # the shipped table, whatever the env says
    assert ours > 0 and ours == pytest.approx(float(response.headers["x-litellm-response-cost"]))
