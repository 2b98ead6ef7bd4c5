"""Tokens and cost offline on the OpenTelemetry GenAI conventions' names, per tenant (real app and index)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag_api import metrics
from rag_api.app import create_app
from rag_api.llm import build_prompt
from rag_api.usage import count_tokens
from tests.support.metrics import sample
from tests.support.rag import copy_index, offline_settings

QUESTION = "How do I reset my password?"
OFFLINE = {
    "gen_ai_operation_name": "chat",
    "gen_ai_provider_name": "offline",
    "gen_ai_request_model": "offline",
    "gen_ai_response_model": "offline",
}


def tokens(token_type: str, suffix: str = "sum") -> float:
    return sample(f"gen_ai_client_token_usage_{suffix}", {**OFFLINE, "gen_ai_token_type": token_type})


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = offline_settings(
        copy_index(tmp_path_factory.mktemp("rag-usage") / "chroma"),
        tenant_daily_budgets={"acme": 20.0},
        default_daily_budget=100.0,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def chat(client: TestClient, tenant: str | None = None) -> dict:
    headers = {"X-Tenant": tenant} if tenant is not None else {}
    response = client.post("/chat", json={"query": QUESTION, "evaluate": "off"}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_metric_names_labels_and_buckets_are_the_conventions() -> None:
    assert metrics.GENAI_TOKEN_USAGE._name == "gen_ai_client_token_usage"
    # Both instruments carry the operation, provider and models (semconv gen-ai-metrics); each adds its own.
    operation = ("gen_ai_operation_name", "gen_ai_provider_name")
    models = ("gen_ai_request_model", "gen_ai_response_model")
    assert metrics.GENAI_TOKEN_USAGE._labelnames == (*operation, "gen_ai_token_type", *models)
    assert metrics.GENAI_OPERATION_DURATION._name == "gen_ai_client_operation_duration_seconds"
    assert metrics.GENAI_OPERATION_DURATION._labelnames == (*operation, *models, "error_type")
    # semconv gen-ai-metrics: ExplicitBucketBoundaries of each instrument (+Inf is prometheus-client's).
    token_bounds = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
    duration_bounds = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
    assert list(metrics.GENAI_TOKEN_USAGE._upper_bounds[:-1]) == token_bounds
    assert list(metrics.GENAI_OPERATION_DURATION._upper_bounds[:-1]) == duration_bounds


def test_offline_answers_move_tokens_and_cost_counted_with_the_minilm_tokenizer(client: TestClient) -> None:
    input_before, output_before = tokens("input"), tokens("output")
    cost_before = sample("llm_cost_dollars_total", {"tenant": "default", "model": "offline"})
    body = chat(client)
    input_tokens = tokens("input") - input_before
    output_tokens = tokens("output") - output_before
    assert output_tokens == count_tokens(body["answer"]) > 0
    assert input_tokens > 200  # the system prompt plus three chunks of context
    price = client.app.state.rag.settings.price_for("offline")
    expected = (input_tokens * price.prompt + output_tokens * price.completion) / 1_000_000
    cost = sample("llm_cost_dollars_total", {"tenant": "default", "model": "offline"}) - cost_before
    assert cost == pytest.approx(expected) and cost > 0
    assert body["cost_dollars"] == pytest.approx(expected, abs=1e-8)
    exposition = client.get("/metrics").text
    assert 'llm_token_usage_estimated{gen_ai_provider_name="offline"} 1.0' in exposition
    assert 'gen_ai_client_token_usage_bucket{gen_ai_operation_name="chat"' in exposition
    assert (
        'gen_ai_client_operation_duration_seconds_count{error_type="",gen_ai_operation_name="chat"'
        in exposition
    )


def test_token_counts_are_not_truncated_at_the_embedders_limit() -> None:
    assert count_tokens("password " * 1000) == 1000  # the embedder truncates at 256


@pytest.mark.parametrize(
    ("header", "tenant"),
    [(None, "default"), ("acme", "acme"), ("  ACME ", "acme"), ("someone-else", "other"), ("", "default")],
)
def test_the_tenant_header_goes_through_the_allow_list(
    client: TestClient, header: str | None, tenant: str
) -> None:
    before = sample("llm_cost_dollars_total", {"tenant": tenant, "model": "offline"})
    body = chat(client, header)
    assert body["tenant"] == tenant
    assert sample("llm_cost_dollars_total", {"tenant": tenant, "model": "offline"}) > before


def test_an_overlong_tenant_header_is_a_422_naming_it(client: TestClient) -> None:
    response = client.post("/chat", json={"query": QUESTION}, headers={"X-Tenant": "x" * 65})
    assert response.status_code == 422
    assert "x-tenant" in response.text.lower()


def test_every_tenant_has_its_daily_budget_gauge(client: TestClient) -> None:
    assert sample("llm_tenant_daily_budget_dollars", {"tenant": "acme"}) == 20.0
    for tenant in ("default", "globex", "other"):
        assert sample("llm_tenant_daily_budget_dollars", {"tenant": tenant}) == 100.0


def test_the_token_inflation_fault_inflates_one_tenants_prompts_only(client: TestClient) -> None:
    baseline = chat(client, "globex")["cost_dollars"]
    response = client.post(
        "/admin/faults/token_inflation",
        json={"duration_seconds": 30, "params": {"factor": 20, "tenant": "acme"}},
    )
    assert response.status_code == 200, response.text
    try:
        before = tokens("input")
        inflated = chat(client, "acme")
        acme_tokens = tokens("input") - before
        other = chat(client, "globex")
    finally:
        client.delete("/admin/faults/token_inflation")
    retrieval = client.app.state.rag._retrieve(QUESTION, 3)
    single = sum(count_tokens(m["content"]) for m in build_prompt(QUESTION, retrieval.chunks))
    assert acme_tokens > 15 * single  # twenty copies of the context (the system prompt once)
    assert inflated["cost_dollars"] > 5 * baseline  # input x20; the answer (output) is unchanged
    assert other["cost_dollars"] == pytest.approx(baseline)


@pytest.mark.parametrize(
    ("field", "tenant"),
    [(None, "default"), ("acme", "acme"), (" Globex", "globex"), ("tenant-4711", "other")],
)
def test_the_monitor_inference_tenant_goes_through_the_same_allow_list(
    client: TestClient, field: str | None, tenant: str
) -> None:
    payload = {"prompt": QUESTION, "response": "Open Settings > Security.", "evaluate": False}
    response = client.post("/monitor/inference", json={**payload, "tenant": field})
    assert response.status_code == 200, response.text
    assert response.json()["tenant"] == tenant
