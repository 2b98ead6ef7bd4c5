"""Request and response bodies of rag_api: strict, so wrong types and unknown fields are 422s."""

from __future__ import annotations

from typing import Annotated, Literal

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
