"""Request and response bodies of rag_api: strict, so wrong types and unknown fields are 422s."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

Query = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, strict=True)]
SessionId = Annotated[str, StringConstraints(max_length=128, strict=True)]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Query = Field(description="The user's question (1-2000 characters).")
    # Accepted for client-side correlation and logs; never a metric label (unbounded).
    session_id: SessionId | None = None
    top_k: StrictInt | None = Field(default=None, ge=1, le=10, description="Chunks to retrieve (default 3).")
    evaluate: Literal["async", "sync", "off"] = Field(
        default="async", description="Score the answer in the background, inline (returned), or not at all."
    )


Text = Annotated[str, StringConstraints(min_length=1, max_length=16_000, strict=True)]
Context = Annotated[str, StringConstraints(max_length=8000, strict=True)]
Label = Annotated[str, StringConstraints(max_length=128, strict=True)]


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_tokens: StrictInt = Field(default=0, ge=0, le=10_000_000)
    completion_tokens: StrictInt = Field(default=0, ge=0, le=10_000_000)
    total_tokens: StrictInt | None = Field(default=None, ge=0, le=20_000_000)


class InferenceRecord(BaseModel):
    """One exchange of any LLM app, posted to /monitor/inference. Nothing here becomes a metric label."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text = Field(description="The user's message (1-16000 characters).")
    response: Text = Field(description="The model's answer (1-16000 characters).")
    contexts: list[Context] | None = Field(
        default=None, max_length=20, description="Retrieved passages (≤ 20, ≤ 8000 characters each)."
    )
    model: Label | None = None
    usage: Usage | None = None
    tenant: Label | None = Field(
        default=None,
        description="Mapped through the tenant allow-list like X-Tenant (missing: the default tenant, "
        "unknown: `other`) and echoed back as that.",
    )
    canary: Annotated[str, StringConstraints(min_length=8, max_length=128, strict=True)] | None = Field(
        default=None, description="The app's own canary token: found in the response = prompt leak."
    )
    evaluate: bool = Field(default=True, description="Also score groundedness and relevance (slower).")


class Source(BaseModel):
    id: str
    article_id: str
    title: str
    distance: float


class LatencyMs(BaseModel):
    retrieval: float
    generation: float
    evaluation: float | None = None
    total: float


class ScoresOut(BaseModel):
    groundedness: float
    hallucination: float
    context_relevance: float
    answer_relevance: float


class ChatResponse(BaseModel):
    answer_id: str = Field(description="Names this answer in POST /feedback (while its record is kept).")
    answer: str
    sources: list[Source]
    generator: Literal["offline", "openai", "offline-fallback"]
    model: str
    latency_ms: LatencyMs
    # "queued" | "sampled_out" | "dropped" | "off" | "ok" | "failed"
    evaluation: str
    scores: ScoresOut | None = None
    evaluation_error: str | None = None
    session_id: str | None = None
    # Input and output safety checks (rag_api/safety/chain.py); None when RAG_SAFETY_ENABLED=false.
    safety: dict[str, Any] | None = None
    tenant: str = Field(description="The X-Tenant header through the allow-list (unknown: `other`).")
    cost_dollars: float = Field(description="Estimated generation cost (price table; offline: simulated).")
