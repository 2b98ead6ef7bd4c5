"""The RAG pipeline behind the routes: retrieval, generation, evaluation hand-off and drift, with metrics.

The query is embedded once; the vector serves retrieval, sentence selection and drift. Blocking work
(embedding, Chroma, the scorer) runs in threads so that the event loop keeps serving requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from lab_common.faults import Fault, FaultRegistry, LatencyParams, RateParams
from rag_api import metrics
from rag_api.drift import EmbeddingDriftMonitor, build_drift_monitor
from rag_api.embeddings import get_embedder
from rag_api.evaluation import Evaluator, Scores, build_evaluator
from rag_api.evaluation_queue import EvaluationJob, EvaluationQueue, EvaluatorProcess
from rag_api.llm import AnswerGenerator, TokenInflationParams, context_sentences
from rag_api.records import AnswerRecord, AnswerRecords, verdict
from rag_api.safety.chain import SafetyBlocked, SafetyChain, Verdict
from rag_api.safety.faults import FAULTS as SAFETY_FAULTS
from rag_api.safety.faults import apply_leak_faults
from rag_api.schemas import ChatRequest, InferenceRecord
from rag_api.settings import RAGSettings
from rag_api.store import KnowledgeError, KnowledgeStore, RetrievedChunk, StoreUnavailable
from rag_api.text import EmbeddingCache
from rag_api.usage import PROVIDER_OFFLINE, UsageMeter

log = logging.getLogger(__name__)

FAULTS = {
    "latency": Fault("generation waits `delay_ms` milliseconds", LatencyParams),
    "hallucination": Fault(
        "a share `rate` (0-1) of answers ignores or contradicts the retrieved context", RateParams
    ),
    "evaluation_failure": Fault("a share `rate` (0-1) of evaluations raises (counted as failed)", RateParams),
    **SAFETY_FAULTS,
    "token_inflation": Fault(
        "prompts carry their context `factor` times, for `tenant` (default: every tenant)",
        TokenInflationParams,
    ),
}


@dataclass(frozen=True)
class Retrieval:
    vector: np.ndarray
    chunks: list[RetrievedChunk]
    seconds: float


def scores_out(scores: Scores) -> dict[str, float]:
    """The scores as /chat returns them and the records keep them."""
    return {
        "groundedness": scores.groundedness,
        "hallucination": 1.0 - scores.groundedness,
        "context_relevance": scores.context_relevance,
        "answer_relevance": scores.answer_relevance,
    }


def safety_action(checked_output: Verdict | None) -> str | None:
    """What the output stage did to the answer, for its record (rag_api.records.SAFETY_ACTIONS)."""
    if checked_output is None:
        return None
    if checked_output.blocked:
        return "output_blocked"
    if any(r.outcome == "redacted" for r in checked_output.results):
        return "redacted"
    return None


class RAGService:
    def __init__(
        self, settings: RAGSettings, faults: FaultRegistry, evaluator: Evaluator | None = None
    ) -> None:
        self.settings = settings
        self.faults = faults
        self.embedder = get_embedder()
        self.store = KnowledgeStore(settings)
        # The corpus is fixed: each knowledge sentence is embedded once (bounded for a huge knowledge base).
        self.sentences = EmbeddingCache(self.embedder.embed, maxsize=50_000)
        self.safety = SafetyChain(settings.safety, faults=faults)
        self.usage = UsageMeter(settings)
        self.generator = AnswerGenerator(
            settings, faults, self.sentences, self.store.corpus, self.usage, canary=self.safety.canary
        )
        self._leak_rng = random.Random()
        evaluator_kwargs: dict[str, Any] = {
            "api_key": settings.openai_api_key,
            "base_url": settings.openai_base_url,
            "model": settings.judge_model,
            "timeout": settings.llm_timeout_seconds,
            "max_retries": settings.llm_max_retries,
        }
        self.evaluator: Evaluator | EvaluatorProcess
        if evaluator is not None:
            self.evaluator = evaluator
        elif settings.evaluation_in_process:
            self.evaluator = EvaluatorProcess(evaluator_kwargs, timeout=settings.evaluation_timeout_seconds)
        else:
            self.evaluator = build_evaluator(**evaluator_kwargs)
        self.evaluations = EvaluationQueue(
            self.evaluator,
            size=settings.evaluation_queue_size,
            sample_rate=settings.evaluation_sample_rate,
            faults=faults,
            timeout=settings.evaluation_timeout_seconds,
            concurrency=settings.evaluation_concurrency,
            usage=self.usage,
            on_scored=self._scored_later,
        )
        self.drift: EmbeddingDriftMonitor = build_drift_monitor(
            settings.reference_queries_path,
            self.embedder.embed,
            window_size=settings.drift_window_size,
            min_samples=settings.drift_min_samples,
            threshold=settings.drift_threshold,
            quantile=settings.drift_outlier_quantile,
        )
        self.records: AnswerRecords | None = None  # opened in start() when RAG_RECORDS_ENABLED
        self._loaded = False
        self._warmer: asyncio.Task[None] | None = None
        self.sentences_warm = False  # set once every knowledge sentence is embedded (see _warm_sentences)
        self._load_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        metrics.initialise()
        models = list(dict.fromkeys([self.generator.model, self.settings.judge_model]))
        self.usage.start(models, estimated_providers=[] if self.generator.openai else [PROVIDER_OFFLINE])
        metrics.BACKEND_INFO.labels(
            self.generator.backend, self.generator.model, self.evaluator.provider_name
        ).set(1)
        metrics.EMBEDDING_DRIFT.set(0.0)
        if self.settings.records_enabled:
            self.records = await asyncio.to_thread(
                AnswerRecords,
                self.settings.records_path,
                retention_seconds=self.settings.records_retention_hours * 3600,
                max_records=self.settings.records_max,
                salt=self.settings.records_user_salt,
            )
        self.evaluations.start()
        try:
            await self.ensure_loaded()
        except StoreUnavailable as exc:  # server mode: keep running, /ready says why, retry on demand
            log.warning("knowledge base not loaded at start: %s", exc)
        if self.settings.warm_sentence_cache:
            self._warmer = asyncio.create_task(self._warm_sentences(), name="sentence-warmup")

    async def _warm_sentences(self) -> None:
        """Embed the knowledge sentences in small batches: the offline generator then never waits for them."""
        try:
            corpus = await asyncio.to_thread(self.store.corpus)
            texts = [s.text for s in context_sentences(corpus)]
            start = time.perf_counter()
            embedded = 0
            for i in range(0, len(texts), 16):
                embedded += await asyncio.to_thread(self.sentences.warm, texts[i : i + 16])
            self.sentences_warm = True
            log.info("sentence cache warm: %d embedded in %.1fs", embedded, time.perf_counter() - start)
        except StoreUnavailable as exc:
            log.warning("sentence cache not warmed: %s", exc)
        except Exception:  # a background helper must never take the service down; queries embed lazily
            log.exception("sentence cache warm-up failed")

    async def stop(self) -> None:
        if self._warmer is not None:
            self._warmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warmer
        await self.evaluations.stop()
        await self.generator.close()
        if self.records is not None:
            self.records.close()

    async def ensure_loaded(self) -> None:
        if self._loaded:
            return
        async with self._load_lock:
            if not self._loaded:
                try:
                    loaded = await asyncio.to_thread(self.store.ensure_loaded)
                except KnowledgeError as exc:  # nothing stored and nothing loadable: /ready and /chat say why
                    raise StoreUnavailable(
                        f"the knowledge base is empty and cannot be loaded: {exc}"
                    ) from exc
                self._loaded = True
                count = await asyncio.to_thread(self.store.count)
                metrics.KNOWLEDGE_CHUNKS.set(count)
                log.info("knowledge base ready: %d chunks%s", count, " (loaded now)" if loaded else "")

    # -- requests --------------------------------------------------------------------------------------------
    def _retrieve(self, query: str, top_k: int) -> Retrieval:
        start = time.perf_counter()
        vector = self.embedder.embed([query])[0]
        chunks = self.store.search(vector, top_k)
        seconds = time.perf_counter() - start
        metrics.RETRIEVAL_DURATION.observe(seconds)
        for chunk in chunks:
            metrics.RETRIEVAL_DISTANCE.observe(chunk.distance)
        return Retrieval(vector, chunks, seconds)

    async def chat(self, request: ChatRequest, tenant: str | None = None) -> dict[str, Any]:
        """Raises StoreUnavailable (-> 503); every outcome is counted in rag_chat_requests_total.
        `tenant`: the X-Tenant header, resolved through the allow-list."""
        start = time.perf_counter()
        status = "error"
        try:
            result = await self._chat(request, start, self.usage.tenant(tenant))
            status = "ok"
            return result
        except StoreUnavailable:
            status = "unavailable"
            raise
        except SafetyBlocked:
            status = "blocked"
            raise
        finally:
            metrics.CHAT_REQUESTS.labels(status).inc()
            metrics.CHAT_DURATION.observe(time.perf_counter() - start)

    async def _chat(self, request: ChatRequest, start: float, tenant: str) -> dict[str, Any]:
        await self.ensure_loaded()
        top_k = request.top_k or self.settings.top_k
        retrieval = await asyncio.to_thread(self._retrieve, request.query, top_k)
        if not retrieval.chunks:
            self._loaded = False  # emptied behind our back (e.g. a wiped Chroma server): reload next time
            raise StoreUnavailable("the knowledge base is empty")
        self.drift.observe(retrieval.vector)
        answer_id = uuid.uuid4().hex
        checked_input = await self._scan_input(request, retrieval.vector, answer_id, tenant)

        generation_start = time.perf_counter()
        generation = await self.generator.generate(request.query, retrieval.vector, retrieval.chunks, tenant)
        generation_seconds = time.perf_counter() - generation_start
        generated = apply_leak_faults(generation.answer, self.faults, self.safety.canary, self._leak_rng)
        checked_output = self.safety.scan_output(generated) if self.safety.enabled else None

        job = EvaluationJob(request.query, [c.text for c in retrieval.chunks], generated, tenant, answer_id)
        scores = error = None
        evaluation_seconds: float | None = None
        evaluation = "off"
        if request.evaluate == "sync":
            evaluation_start = time.perf_counter()
            scores, error = await self.evaluations.score_inline(job)
            evaluation_seconds = time.perf_counter() - evaluation_start
            evaluation = "ok" if scores is not None else "failed"

        def ms(seconds: float) -> float:
            return round(seconds * 1000, 2)

        response = {
            "answer_id": answer_id,
            "answer": checked_output.text if checked_output else generated,
            "sources": [
                {"id": c.id, "article_id": c.article_id, "title": c.title, "distance": round(c.distance, 4)}
                for c in retrieval.chunks
            ],
            "generator": generation.generator,
            "model": generation.model,
            "latency_ms": {
                "retrieval": ms(retrieval.seconds),
                "generation": ms(generation_seconds),
                "evaluation": ms(evaluation_seconds) if evaluation_seconds is not None else None,
                "total": ms(time.perf_counter() - start),
            },
            "evaluation": evaluation,
            "scores": scores_out(scores) if scores is not None else None,
            "evaluation_error": error,
            "session_id": request.session_id,
            "safety": (
                {"input": checked_input.as_dict(), "output": checked_output.as_dict()}
                if checked_input and checked_output
                else None
            ),
            "tenant": tenant,
            "cost_dollars": round(generation.cost, 8),
        }
        await self._record(request, response, safety_action(checked_output))
        if request.evaluate == "async":  # queued once recorded: the queue's scores update the record
            response["evaluation"] = self.evaluations.submit(job)
        return response

    async def _record(self, request: ChatRequest, response: dict[str, Any], action: str | None) -> None:
        """Keep the answer for feedback and review; a failed write is counted, the answer served anyway."""
        if self.records is None:
            return
        scores = response["scores"]
        record = AnswerRecord(
            id=response["answer_id"],
            tenant=response["tenant"],
            query=request.query,
            answer=response["answer"],
            sources=response["sources"],
            scores=scores,
            evaluator_verdict=verdict(scores, self.settings.grounded_threshold),
            user=request.session_id,
            safety=response["safety"],
            safety_action=action,
        )
        try:
            await asyncio.to_thread(self.records.add, record)
        except sqlite3.Error:
            metrics.RECORD_ERRORS.inc()
            log.exception("answer %s not recorded", record.id)

    def _scored_later(self, answer_id: str, scores: Scores) -> None:
        """The evaluation queue's scores of an answer served earlier: into its record (in a thread)."""
        if self.records is None:
            return
        out = scores_out(scores)
        try:
            self.records.set_scores(answer_id, out, verdict(out, self.settings.grounded_threshold))
        except sqlite3.Error:
            metrics.RECORD_ERRORS.inc()
            log.exception("scores of answer %s not recorded", answer_id)

    async def _scan_input(
        self, request: ChatRequest, vector: np.ndarray, answer_id: str, tenant: str
    ) -> Verdict | None:
        """Raises SafetyBlocked when an enforced check refuses the message (recorded first, without an
        answer, so that the refusal can be reviewed and voted on); None with the chain off."""
        if not self.safety.enabled:
            return None
        checked = self.safety.scan_input(request.query, vector)
        if checked.blocked:
            refused: dict[str, Any] = {
                "answer_id": answer_id,
                "answer": "",
                "sources": [],
                "scores": None,
                "tenant": tenant,
                "safety": {"input": checked.as_dict(), "output": None},
            }
            await self._record(request, refused, "input_blocked")
            raise SafetyBlocked(checked, answer_id)
        return checked

    async def monitor_inference(self, record: InferenceRecord) -> dict[str, Any]:
        """Checks and scores another app's exchange: recorded as source="external", never enforced."""
        vector = await asyncio.to_thread(self.embedder.embed, [record.prompt])
        checked_input = self.safety.scan_input(record.prompt, vector[0], source="external", enforce=False)
        checked_output = self.safety.scan_output(
            record.response, source="external", enforce=False, canary=record.canary
        )
        scores, error = None, None
        if record.evaluate:
            scores, error = await self._score_external(record)
        flagged = [r for v in (checked_input, checked_output) for r in v.results if r.flagged]
        pii = next(r for r in checked_output.results if r.check == "pii")
        return {
            "source": "external",
            "tenant": self.usage.tenant(record.tenant),  # the X-Tenant allow-list: one tenant vocabulary
            "model": record.model,
            "flagged": [f"{r.stage}.{r.check}" for r in flagged],
            "safety": {"input": checked_input.as_dict(), "output": checked_output.as_dict()},
            # The response as it could be shown with its PII redacted (None: nothing to redact).
            "redacted_response": (self.safety.redact(record.response) if pii.flagged else None),
            "scores": scores,
            "evaluation_error": error,
        }

    async def _score_external(self, record: InferenceRecord) -> tuple[dict[str, float] | None, str | None]:
        """rag_api's scorer on the posted exchange; its scores stay out of rag_api's own quality metrics."""
        try:
            s = await asyncio.to_thread(
                self.evaluator.score, record.prompt, record.contexts or [], record.response
            )
        except Exception as exc:  # no contexts, scorer down, ...: the safety results still come back
            return None, str(exc) or type(exc).__name__
        return {
            "groundedness": s.groundedness,
            "hallucination": 1.0 - s.groundedness,
            "context_relevance": s.context_relevance,
            "answer_relevance": s.answer_relevance,
        }, None

    async def reload(self) -> dict[str, Any]:
        """Raises KnowledgeError (the collection is kept) or StoreUnavailable."""
        summary = await asyncio.to_thread(self.store.reload)
        self._loaded = True
        metrics.KNOWLEDGE_CHUNKS.set(summary["chunks"])
        return summary

    async def stats(self) -> dict[str, Any]:
        stats = await asyncio.to_thread(self.store.stats)
        metrics.KNOWLEDGE_CHUNKS.set(stats["chunks"])
        return {**stats, "generator": self.generator.describe(), "evaluator": self.evaluator.provider_name}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Called from a sync route (thread pool): the store is reachable and holds chunks."""
        try:
            chunks = self.store.count()
        except StoreUnavailable as exc:
            return False, {"store": "unavailable", "error": str(exc)}
        metrics.KNOWLEDGE_CHUNKS.set(chunks)
        details = {
            "store": self.store.mode,
            "chunks": chunks,
            "generator": self.generator.backend,
            "evaluator": self.evaluator.provider_name,
            # Degraded, not unready: /chat still answers, only `evaluate=sync` waits out the timeout.
            "evaluation": "stuck" if self.evaluations.stuck else "ok",
            "sentence_cache": "warm" if self.sentences_warm else "lazy",
        }
        if chunks == 0:
            return False, {**details, "error": "the knowledge base is empty"}
        return True, details
