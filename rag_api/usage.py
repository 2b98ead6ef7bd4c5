"""Every LLM call (generation and judge) on the OpenTelemetry GenAI semantic conventions, priced per tenant.

The two client metrics of the convention (semconv gen-ai metrics, "Development" status, v1.37+ attribute
names: `gen_ai.provider.name` replaced `gen_ai.system`) under their Prometheus names:
`gen_ai_client_token_usage` (unit `{token}` is an annotation: no suffix) and
`gen_ai_client_operation_duration_seconds`, with the buckets the convention gives. The cost is not part of the
convention: `llm_cost_dollars_total{tenant,model}` stays, priced from the settings' table.

Offline, nothing reports usage, so the offline generator counts what an LLM would have been sent and written
with the MiniLM tokenizer the project ships (the convention allows "offline token counting"), and the
`llm_token_usage_estimated` info metric says which provider's counts are estimates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rag_api import metrics
from rag_api.settings import RAGSettings

OPERATION_CHAT = "chat"  # gen_ai.operation.name of a chat completion (the generator and the judge)
PROVIDER_OPENAI = "openai"
PROVIDER_OFFLINE = "offline"  # not a well-known value: the convention allows custom ones
OTHER = "other"
MAX_RESPONSE_MODELS = 8  # distinct gen_ai_response_model values kept; further ones are folded into "other"


@dataclass(frozen=True)
class LLMCall:
    """One GenAI operation: what the convention's two client metrics record about it."""

    provider: str
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    seconds: float
    error_type: str = ""  # empty on success; the convention's `error.type` otherwise (e.g. "timeout")
    operation: str = OPERATION_CHAT
    estimated: bool = False  # counted here with the MiniLM tokenizer, not reported by a server


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """The MiniLM tokenizer without truncation or padding (its file truncates at 128, the embedder at 256)."""
    from tokenizers import Tokenizer

    from rag_api.embeddings import _tokenizer_file

    tokenizer = Tokenizer.from_file(str(_tokenizer_file()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """WordPiece tokens of `text` (no [CLS]/[SEP]): an estimate of what an LLM would bill, within ~20 %."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


class _BoundedValues:
    """The first `limit` distinct values pass, later ones read as "other": a label stays bounded."""

    def __init__(self, limit: int) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


class UsageMeter:
    """Records LLM calls, resolves tenants through the allow-list and prices tokens per tenant and model."""

    def __init__(self, settings: RAGSettings) -> None:
        self.settings = settings
        self._response_model = _BoundedValues(MAX_RESPONSE_MODELS)

    def tenant(self, header: str | None) -> str:
        """The X-Tenant header through the allow-list: missing -> the default tenant, unknown -> "other"."""
        name = (header or self.settings.default_tenant).strip().lower()
        return name if name in self.settings.tenants else OTHER

    def tenants(self) -> list[str]:
        return [*sorted(self.settings.tenants), OTHER]

    def start(self, models: list[str], estimated_providers: list[str]) -> None:
        """Budget gauges for every tenant; cost series at 0 so that rates work before the first call."""
        for tenant in self.tenants():
            metrics.TENANT_DAILY_BUDGET.labels(tenant).set(self.settings.daily_budget_for(tenant))
            for model in models:
                metrics.COST.labels(tenant, model)
        for provider in estimated_providers:
            metrics.TOKEN_USAGE_ESTIMATED.labels(provider).set(1)

    def cost(self, call: LLMCall) -> float:
        price = self.settings.price_for(call.request_model)
        return (call.input_tokens * price.prompt + call.output_tokens * price.completion) / 1_000_000

    def record(self, call: LLMCall, tenant: str) -> float:
        """Observe one call (token histograms only when it returned usage) and add its cost; returns it."""
        response_model = self._response_model(call.response_model) if call.response_model else ""
        common = (call.operation, call.provider, call.request_model, response_model)
        metrics.GENAI_OPERATION_DURATION.labels(*common, call.error_type).observe(call.seconds)
        if call.error_type:
            return 0.0  # a failed call reports no usage, and the convention records none
        metrics.GENAI_TOKEN_USAGE.labels(call.operation, call.provider, "input", *common[2:]).observe(
            call.input_tokens
        )
        metrics.GENAI_TOKEN_USAGE.labels(call.operation, call.provider, "output", *common[2:]).observe(
            call.output_tokens
        )
        cost = self.cost(call)
        metrics.COST.labels(tenant, call.request_model).inc(cost)
        return cost
