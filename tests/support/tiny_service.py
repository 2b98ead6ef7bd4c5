"""A minimal lab service for tests of the shared layers (lab_common): the same app factory, fault registry
and server as ml_api and rag_api, with no model or index, so it starts in well under a second.

`python -m tests.support.tiny_service` serves it on TINY_PORT, through `lab_common.serve.run_service`.
"""

from __future__ import annotations

import functools
import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lab_common.app import create_service_app, lazy_app
from lab_common.faults import Fault, FaultRegistry, LatencyParams, RateParams
from lab_common.metrics import RequestMetrics, request_metrics
from lab_common.settings import LabSettings


@functools.cache
def http_metrics() -> RequestMetrics:
    # Made on first use, not at import: `python -m` runs this file as __main__ and uvicorn imports it again.
    return request_metrics("tiny")


class Work(BaseModel):
    size: int = Field(default=1, ge=1, le=100)


def create_app(settings: LabSettings | None = None) -> FastAPI:
    settings = settings or LabSettings()
    faults = FaultRegistry(
        {"latency": Fault("/work waits delay_ms", LatencyParams), "errors": Fault("/work fails", RateParams)},
        max_seconds=settings.max_fault_seconds,
    )
    app = create_service_app(
        title="tiny", version="0", settings=settings, request_metrics=http_metrics(), faults=faults
    )

    @app.post("/work")
    async def work(body: Work) -> JSONResponse:
        await faults.maybe_delay()
        if faults.fires("errors"):
            return JSONResponse({"detail": "injected fault: errors"}, status_code=503)
        return JSONResponse({"done": body.size})

    return app


__getattr__ = lazy_app(__name__, create_app)


if __name__ == "__main__":
    from lab_common.serve import run_service

    run_service(
        "tests.support.tiny_service:app",
        host="127.0.0.1",
        port=int(os.environ["TINY_PORT"]),
        workers=int(os.environ.get("TINY_WORKERS", "1")),
        service="tiny",
        log_level="warning",
    )
