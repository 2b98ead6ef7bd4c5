"""rag_api routes: `/chat`, knowledge admin, embedding drift, plus the shared /health, /ready, /metrics."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Header
from fastapi.responses import JSONResponse

from lab_common.app import ErrorBody, create_service_app, lazy_app
from lab_common.faults import FaultRegistry, require_admin
from lab_common.logging import setup_logging
from rag_api import __version__, metrics
from rag_api.evaluation import Evaluator
from rag_api.feedback import feedback_router
from rag_api.safety.chain import SafetyBlocked
from rag_api.schemas import ChatRequest, ChatResponse, InferenceRecord
from rag_api.service import FAULTS, RAGService
from rag_api.settings import RAGSettings
from rag_api.store import KnowledgeError, StoreUnavailable


def _unavailable(exc: StoreUnavailable) -> JSONResponse:
    return JSONResponse({"detail": f"knowledge base unavailable: {exc}"}, status_code=503)


RELOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The knowledge directory is missing or holds no article", "model": ErrorBody},
    422: {"description": "An article cannot be read: the field is its file name"},
}


def _refused(exc: KnowledgeError) -> JSONResponse:
    """A bad article is a 422 like every other in the lab, its file name as the field."""
    if exc.file is None:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    error = {"field": exc.file, "message": exc.reason, "type": "invalid_article"}
    return JSONResponse({"detail": [error]}, status_code=exc.status)


def create_app(settings: RAGSettings | None = None, *, evaluator: Evaluator | None = None) -> FastAPI:
    """The app; `evaluator` replaces the one the settings would build (labs and tests)."""
    settings = settings or RAGSettings()
    setup_logging("rag_api", settings.log_level)
    # httpx (under the OpenAI SDK) logs every call at INFO, TruLens/alembic their set-up: noise next to ours.
    for noisy in ("httpx", "alembic", "trulens"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    faults = FaultRegistry(dict(FAULTS), max_seconds=settings.max_fault_seconds)
    rag = RAGService(settings, faults, evaluator)
    app = create_service_app(
        title="rag_api",
        version=__version__,
        settings=settings,
        request_metrics=metrics.HTTP,
        service=rag,
        faults=faults,
        latency_cusum=metrics.LATENCY_CUSUM,
    )
    app.state.rag = rag
    admin = Depends(require_admin(settings))

    @app.post("/chat", response_model=ChatResponse, tags=["rag"])
    async def chat(body: ChatRequest, x_tenant: str | None = Header(default=None, max_length=64)) -> Any:
        try:
            return await rag.chat(body, x_tenant)
        except StoreUnavailable as exc:
            return _unavailable(exc)
        except SafetyBlocked as exc:  # enforce mode: flagged -> 400, the check failed closed -> 503
            return JSONResponse(exc.body(), status_code=503 if exc.failed else 400)

    @app.post("/monitor/inference", tags=["safety"])
    async def monitor_inference(body: InferenceRecord) -> Any:
        """Safety checks and quality scores of any LLM app's exchange (recorded as source="external")."""
        return await rag.monitor_inference(body)

    @app.get("/safety", tags=["safety"])
    def safety_config() -> dict[str, Any]:
        """The safety chain's switches (mode per stage.check, fail mode); the canary stays secret."""
        return rag.safety.describe()

    # Late-bound: the records file is opened at start-up (lifespan).
    app.include_router(feedback_router(lambda: rag.records))

    @app.get("/knowledge/stats", tags=["knowledge"])
    async def knowledge_stats() -> Any:
        try:
            return await rag.stats()
        except StoreUnavailable as exc:
            return _unavailable(exc)

    @app.post("/knowledge/reload", tags=["knowledge"], dependencies=[admin], responses=RELOAD_ERRORS)
    async def knowledge_reload() -> Any:
        """Both refusals keep the collection as it was."""
        try:
            return await rag.reload()
        except StoreUnavailable as exc:
            return _unavailable(exc)
        except KnowledgeError as exc:
            return _refused(exc)

    @app.get("/drift/embedding", tags=["drift"])
    def embedding_drift() -> dict[str, Any]:
        return rag.drift.snapshot()

    return app


__getattr__ = lazy_app(__name__, create_app)
