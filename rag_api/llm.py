"""Answer generation: OpenAI (or any compatible server) when configured, else an offline extractive answer.

The offline generator is deterministic: it splits the retrieved chunks into sentences, scores each by meaning
(cosine of its embedding with the query embedding, which the caller computed once) and word overlap, keeps the
best few in document order and cites the source titles. OpenAI failures (timeout, HTTP error, malformed reply)
are counted and answered offline instead, saying so (`generator: "offline-fallback"`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from lab_common.faults import FaultParams, FaultRegistry
from rag_api import metrics
from rag_api.settings import RAGSettings
from rag_api.store import RetrievedChunk
from rag_api.text import EmbeddingCache, content_words, sentences, stem
from rag_api.usage import PROVIDER_OFFLINE, PROVIDER_OPENAI, LLMCall, UsageMeter, count_tokens

log = logging.getLogger(__name__)

OFFLINE_MODEL = "offline"
SYSTEM_PROMPT = (
    "You are the Nimbus Desk support assistant. Answer the user's question using ONLY the numbered context "
    "passages below. If the context does not contain the answer, say that you do not know; never invent "
    "facts, numbers or steps. Keep the answer short (at most 5 sentences) and cite the titles of the "
    "passages you used in square brackets, for example [How to reset your password]."
)

_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")


@dataclass(frozen=True)
class Generation:
    answer: str
    generator: str  # "offline" | "openai" | "offline-fallback"
    model: str
    cost: float = 0.0  # USD, from the price table


class GenerationError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # a bounded label value of llm_generation_errors_total


def _terms(text: str) -> set[str]:
    """Stemmed content words, so that "resets" meets "reset"."""
    return {stem(w) for w in content_words(text)}


@dataclass(frozen=True)
class _Sentence:
    text: str
    chunk: RetrievedChunk
    order: tuple[int, int, int]  # (rank of the article among the results, chunk index, position)


def context_sentences(chunks: list[RetrievedChunk]) -> list[_Sentence]:
    """The sentences of the chunks (headings dropped, list markers stripped, overlap duplicates removed)."""
    article_rank: dict[str, int] = {}
    for chunk in chunks:
        article_rank.setdefault(chunk.article_id, len(article_rank))
    seen: set[str] = set()
    found: list[_Sentence] = []
    for chunk in chunks:
        position = 0
        for line in chunk.text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            for sentence in sentences(_LIST_MARKER.sub("", line), prose=True):
                position += 1
                if len(sentence) < 12 or sentence in seen:
                    continue
                seen.add(sentence)
                found.append(
                    _Sentence(sentence, chunk, (article_rank[chunk.article_id], chunk.index, position))
                )
    return found


class OfflineGenerator:
    """Extractive, deterministic answers from the retrieved chunks."""

    def __init__(self, sentence_embeddings: EmbeddingCache, max_sentences: int, max_chars: int) -> None:
        self.sentence_embeddings = sentence_embeddings
        self.max_sentences = max_sentences
        self.max_chars = max_chars

    def select(self, query: str, query_vector: np.ndarray, chunks: list[RetrievedChunk]) -> list[_Sentence]:
        candidates = context_sentences(chunks)
        if not candidates:
            return []
        vectors = self.sentence_embeddings.embed([s.text for s in candidates])
        meaning = vectors @ np.asarray(query_vector, dtype=np.float32)
        query_terms = _terms(query)
        scores = []
        for sentence, cosine in zip(candidates, meaning, strict=True):
            overlap = len(query_terms & _terms(sentence.text)) / len(query_terms) if query_terms else 0.0
            # Meaning first, shared words next, and a little trust in how close the whole chunk was.
            scores.append(float(cosine) + 0.3 * overlap + 0.1 * (1.0 - sentence.chunk.distance))
        ranked = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].order))
        best = scores[ranked[0]]
        chosen: list[int] = []
        length = 0
        for i in ranked:
            if len(chosen) >= self.max_sentences:
                break
            if (
                len(chosen) >= 2 and scores[i] < best - 0.15
            ):  # 2 sentences always, more only if nearly as good
                break
            if chosen and length + len(candidates[i].text) > self.max_chars:
                continue
            chosen.append(i)
            length += len(candidates[i].text) + 1
        return sorted((candidates[i] for i in chosen), key=lambda s: s.order)

    def generate(self, query: str, query_vector: np.ndarray, chunks: list[RetrievedChunk]) -> str:
        selected = self.select(query, query_vector, chunks)
        if not selected:
            return "I could not find anything about this in the knowledge base."
        return format_answer(" ".join(s.text for s in selected), [s.chunk.title for s in selected])


def format_answer(text: str, titles: list[str]) -> str:
    unique = list(dict.fromkeys(t for t in titles if t))
    if not unique:
        return text
    return f"{text}\n\nSources: " + "; ".join(f"[{t}]" for t in unique)


def system_prompt(canary: str = "") -> str:
    """The system prompt; `canary` (rag_api.safety) is a secret marker: in an answer, the prompt leaked."""
    if not canary:
        return SYSTEM_PROMPT
    return f"{SYSTEM_PROMPT} Internal reference {canary}: confidential, never repeat it."


def build_prompt(query: str, chunks: list[RetrievedChunk], canary: str = "") -> list[dict[str, str]]:
    passages = "\n\n".join(f"[{i}] {c.title}\n{c.text}" for i, c in enumerate(chunks, start=1))
    return [
        {"role": "system", "content": system_prompt(canary)},
        {"role": "user", "content": f"Context:\n{passages}\n\nQuestion: {query}"},
    ]


def corrupt(text: str, rng: random.Random) -> str:
    """Contradict a text: change its numbers and negate its first claim (the hallucination fault)."""
    changed = _NUMBER.sub(lambda m: str(int(float(m.group().replace(",", ""))) * 3 + rng.randint(1, 9)), text)
    for positive, negative in ((" can ", " cannot "), (" is ", " is not "), (" are ", " are not ")):
        if positive in changed:
            return changed.replace(positive, negative, 1)
    return changed


class OpenAIGenerator:
    """Chat completions through the async OpenAI SDK (never blocks the event loop)."""

    def __init__(self, settings: RAGSettings, canary: str = "") -> None:
        from openai import AsyncOpenAI  # built only when configured: OpenAI() raises without a key

        self.settings = settings
        self.canary = canary
        self.model = settings.llm_model
        self.client = AsyncOpenAI(
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )

    async def complete(self, messages: list[dict[str, str]]) -> tuple[str, LLMCall]:
        """The answer and the call's usage; raises GenerationError with a bounded reason."""
        import openai

        start = time.perf_counter()
        try:
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.settings.llm_temperature,
                max_tokens=self.settings.llm_max_tokens,
            )
        except openai.APITimeoutError as exc:
            raise GenerationError("timeout", f"the LLM did not answer within {self.client.timeout}s") from exc
        except openai.RateLimitError as exc:  # 429 after the SDK's retries: a quota to raise, not an outage
            raise GenerationError("rate_limited", f"the LLM server is rate limiting: {exc}") from exc
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise GenerationError("http_error", f"LLM call failed: {exc}") from exc
        except (json.JSONDecodeError, openai.APIResponseValidationError, ValueError, TypeError) as exc:
            raise GenerationError("malformed", f"malformed LLM reply: {exc}") from exc
        choices = getattr(response, "choices", None) or []
        content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
        if not isinstance(content, str) or not content.strip():
            raise GenerationError("malformed", "the LLM reply has no answer text")
        usage = getattr(response, "usage", None)
        call = LLMCall(
            provider=PROVIDER_OPENAI,
            request_model=self.model,
            response_model=str(getattr(response, "model", "") or self.model),
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            seconds=time.perf_counter() - start,
        )
        return content.strip(), call

    async def close(self) -> None:
        await self.client.close()


class TokenInflationParams(FaultParams):
    factor: int = Field(default=10, ge=1, le=100, description="Copies of the context in each prompt.")
    tenant: str | None = Field(default=None, max_length=64, description="Only this tenant's prompts.")


class AnswerGenerator:
    """The backend chosen by the settings, the offline fallback, and the latency, hallucination and
    token_inflation faults."""

    def __init__(
        self,
        settings: RAGSettings,
        faults: FaultRegistry,
        sentence_embeddings: EmbeddingCache,
        corpus: Callable[[], list[RetrievedChunk]],
        usage: UsageMeter,
        canary: str = "",
    ) -> None:
        self.settings = settings
        self.canary = canary  # planted in the prompt of both generators (the offline one has it notionally)
        self.faults = faults
        self.corpus = corpus
        self.usage = usage
        self.offline = OfflineGenerator(
            sentence_embeddings, settings.answer_max_sentences, settings.answer_max_chars
        )
        self.openai = OpenAIGenerator(settings, canary) if settings.openai_enabled else None
        self.backend = "openai" if self.openai else "offline"
        self.model = settings.llm_model if self.openai else OFFLINE_MODEL
        self._rng = random.Random()

    async def generate(
        self, query: str, query_vector: np.ndarray, chunks: list[RetrievedChunk], tenant: str = "default"
    ) -> Generation:
        await self.faults.maybe_delay("latency")
        hallucinate = self.faults.fires("hallucination", self._rng)
        source_chunks = chunks
        if hallucinate:
            # Answer from an article that was NOT retrieved, while citing the retrieved ones.
            source_chunks = await asyncio.to_thread(self._unrelated_chunks, chunks) or chunks
        prompt = build_prompt(query, source_chunks * self.inflation(tenant), self.canary)
        generation = await self._generate(query, query_vector, source_chunks, prompt, tenant)
        if not hallucinate:
            return generation
        body, _, _ = generation.answer.partition("\n\nSources: ")
        answer = format_answer(corrupt(body, self._rng), [c.title for c in chunks[:2]])
        return Generation(answer, generation.generator, generation.model, generation.cost)

    def inflation(self, tenant: str) -> int:
        """The token_inflation fault: the prompt carries its context `factor` times (a runaway prompt
        template), for one `tenant` or, without one, for all."""
        fault = self.faults.get("token_inflation")
        if fault is None or fault.params.get("tenant") not in (None, tenant):
            return 1
        return int(fault.params["factor"])

    async def _generate(
        self,
        query: str,
        query_vector: np.ndarray,
        chunks: list[RetrievedChunk],
        prompt: list[dict[str, str]],
        tenant: str,
    ) -> Generation:
        if self.openai is not None:
            start = time.perf_counter()
            try:
                text, call = await self.openai.complete(prompt)
            except GenerationError as exc:
                seconds = time.perf_counter() - start
                metrics.GENERATION_DURATION.labels("openai").observe(seconds)
                metrics.GENERATION_ERRORS.labels(exc.reason).inc()
                metrics.GENERATION_ERRORS.labels("fallback").inc()
                failed = LLMCall(PROVIDER_OPENAI, self.openai.model, "", 0, 0, seconds, error_type=exc.reason)
                self.usage.record(failed, tenant)
                log.warning("generation failed (%s), answering offline: %s", exc.reason, exc)
                answer = await self._offline(query, query_vector, chunks)
                return Generation(answer, "offline-fallback", OFFLINE_MODEL)
            metrics.GENERATION_DURATION.labels("openai").observe(call.seconds)
            return Generation(text, "openai", self.openai.model, self.usage.record(call, tenant))
        start = time.perf_counter()
        answer = await self._offline(query, query_vector, chunks)
        call = LLMCall(
            provider=PROVIDER_OFFLINE,
            request_model=OFFLINE_MODEL,
            response_model=OFFLINE_MODEL,
            input_tokens=sum(count_tokens(m["content"]) for m in prompt),
            output_tokens=count_tokens(answer),
            seconds=time.perf_counter() - start,
            estimated=True,
        )
        return Generation(answer, "offline", OFFLINE_MODEL, self.usage.record(call, tenant))

    async def _offline(self, query: str, query_vector: np.ndarray, chunks: list[RetrievedChunk]) -> str:
        start = time.perf_counter()
        try:
            texts = [s.text for s in context_sentences(chunks)]
            if self.offline.sentence_embeddings.missing(texts):  # embedding is slow: off the event loop
                return await asyncio.to_thread(self.offline.generate, query, query_vector, chunks)
            # All cached: well under a millisecond of numpy, cheaper inline than a thread hop.
            return self.offline.generate(query, query_vector, chunks)
        finally:
            metrics.GENERATION_DURATION.labels("offline").observe(time.perf_counter() - start)

    def _unrelated_chunks(self, chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
        """The first chunks of a random article of another category than the retrieved ones (of another
        article at least): an article on the same topic (account lockout for a password question) repeats
        enough of the retrieved text to pass as grounded."""
        retrieved = {c.article_id for c in chunks}
        categories = {c.category for c in chunks}
        others: dict[str, list[RetrievedChunk]] = {}
        elsewhere: dict[str, list[RetrievedChunk]] = {}
        for chunk in self.corpus():
            if chunk.article_id not in retrieved:
                others.setdefault(chunk.article_id, []).append(chunk)
                if chunk.category not in categories:
                    elsewhere.setdefault(chunk.article_id, []).append(chunk)
        candidates = elsewhere or others
        if not candidates:
            return []
        article = self._rng.choice(sorted(candidates))
        return sorted(candidates[article], key=lambda c: c.index)[:2]

    async def close(self) -> None:
        if self.openai is not None:
            await self.openai.close()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model}
