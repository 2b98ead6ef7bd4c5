"""Request and response bodies. Bounds are the documented feature ranges (ml_api/data.py); unknown fields
are rejected, so a typo ("tier") is a 422 naming it instead of a silently defaulted feature. Numbers are
strict: JSON numbers only (`true` or `"12"` is a 422, not 1 or 12), and counts must be integers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ml_api.data import FEATURE_RANGES

BATCH_MAX = 1000  # /predict/batch refuses more (422): one request must not hold the event loop for long


def _in_training_range(feature: str, description: str, example: float, **constraints: Any) -> Any:
    """A feature's field: strict, bounded by the documented range of `feature` (ml_api/data.py)."""
    bounds = FEATURE_RANGES[feature]
    return Field(
        strict=True,
        ge=bounds.minimum,
        le=bounds.maximum,
        description=description,
        examples=[example],
        **constraints,
    )


class Ticket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_length: int = _in_training_range("ticket_length", "Characters in the ticket body.", 640)
    urgency_keywords: int = _in_training_range(
        "urgency_keywords", 'Count of urgency words ("urgent", "outage", "down", ...).', 2
    )
    business_impact: float = _in_training_range(
        "business_impact",
        "Business impact score, 0 (none) to 10 (business stopped).",
        6.5,
        allow_inf_nan=False,
    )
    customer_tier: int = _in_training_range(
        "customer_tier", "Support contract tier, 1 (basic) to 5 (strategic).", 3
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
