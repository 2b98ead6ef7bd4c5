"""Request and response bodies. Bounds are the documented feature ranges (ml_api/data.py); unknown fields
are rejected, so a typo ("tier") is a 422 naming it instead of a silently defaulted feature. Numbers are
strict: JSON numbers only (`true` or `"12"` is a 422, not 1 or 12), and counts must be integers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ml_api.data import FEATURE_RANGES

_R = FEATURE_RANGES
BATCH_MAX = 1000  # /predict/batch refuses more (422): one request must not hold the event loop for long


class Ticket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_length: int = Field(
        strict=True,
        ge=_R["ticket_length"].minimum,
        le=_R["ticket_length"].maximum,
        description="Characters in the ticket body.",
        examples=[640],
    )
    urgency_keywords: int = Field(
        strict=True,
        ge=_R["urgency_keywords"].minimum,
        le=_R["urgency_keywords"].maximum,
        description='Count of urgency words ("urgent", "outage", "down", ...).',
        examples=[2],
    )
    business_impact: float = Field(
        strict=True,
        ge=_R["business_impact"].minimum,
        le=_R["business_impact"].maximum,
        allow_inf_nan=False,
        description="Business impact score, 0 (none) to 10 (business stopped).",
        examples=[6.5],
    )
    customer_tier: int = Field(
        strict=True,
        ge=_R["customer_tier"].minimum,
        le=_R["customer_tier"].maximum,
        description="Support contract tier, 1 (basic) to 5 (strategic).",
        examples=[3],
    )


class TriageRequest(Ticket):
    text: str = Field(min_length=1, max_length=5000, description="The ticket text.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tickets: list[Ticket] = Field(
        min_length=1, max_length=BATCH_MAX, description=f"1 to {BATCH_MAX} tickets."
    )


class Prediction(BaseModel):
    severity: str
    confidence: float = Field(description="Probability of the predicted class.")
    probabilities: dict[str, float]


class PredictionResponse(Prediction):
    model_version: str


class BatchResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


class Source(BaseModel):
    id: str
    title: str
    distance: float | None


class TriageResponse(PredictionResponse):
    explanation: str
    recommended_actions: list[str]
    sources: list[Source]
    degraded: bool
    degraded_reason: str | None = Field(description="timeout, unavailable or error; null when not degraded.")
    degraded_detail: str | None


def prediction_body(severity: str, probabilities: dict[str, float]) -> dict[str, Any]:
    return {"severity": severity, "confidence": probabilities[severity], "probabilities": probabilities}
