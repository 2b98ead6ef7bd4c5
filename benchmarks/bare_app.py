"""The baseline of `benchmarks.http`: a bare FastAPI endpoint taking the same request model as ml_api
/predict and returning a response of the same shape, with no model, metrics or drift window."""

from __future__ import annotations

from fastapi import FastAPI

from ml_api.schemas import Ticket

app = FastAPI(title="bare baseline")


@app.post("/predict")
async def predict(ticket: Ticket) -> dict[str, object]:
    return {
        "severity": "low",
        "probabilities": {"low": 0.7, "medium": 0.2, "high": 0.07, "critical": 0.03},
        "model_version": "bare",
    }
