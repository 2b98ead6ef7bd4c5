"""Triage: the ML severity plus an explanation and actions from rag_api, or the ML part alone (degraded).

rag_api is asked `POST /chat {"query": ..., "top_k": k}` and answers `{"answer": str, "sources": [{"id",
"title", "distance"}], ...}`. Whatever goes wrong with that call — refused connection, timeout, an HTTP
error, a body of the wrong shape — triage still answers 200 with `degraded: true` and a bounded
`degraded_reason` (`timeout`, `unavailable`, `error`): the severity never depends on rag_api.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ml_api import metrics

log = logging.getLogger("ml_api.triage")

QUERY_TEXT_CHARS = 500  # the ticket text quoted in the RAG query; a query is a question, not a document

# What a responder does first at each severity, before any knowledge-base hint.
BASE_ACTIONS: dict[str, list[str]] = {
    "critical": [
        "Page the on-call engineer now and open an incident.",
        "Acknowledge the customer within 15 minutes and post status updates every 30 minutes.",
    ],
    "high": [
        "Assign to the on-call queue and acknowledge within 1 hour.",
        "Check the status page and recent deploys for a related incident.",
    ],
    "medium": ["Route to the product support queue; respond within 1 business day."],
    "low": ["Route to the standard queue; answer with the relevant help-center article."],
}


@dataclass
class RagAdvice:
    answer: str
    sources: list[dict[str, Any]] = field(default_factory=list)


class RagUnavailable(Exception):
    """The RAG call failed; `reason` is one of timeout, unavailable, error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def build_query(text: str, severity: str) -> str:
    snippet = " ".join(text.split())[:QUERY_TEXT_CHARS]
    return f"How should support handle this {severity}-severity ticket? {snippet}"


def _parse_sources(raw: Any) -> list[dict[str, Any]]:
    sources = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        distance = item.get("distance")
        sources.append(
            {
                "id": str(item.get("id", "")),
                "title": str(item.get("title", "")),
                "distance": float(distance) if isinstance(distance, int | float) else None,
            }
        )
    return sources


async def ask_rag(
    client: httpx.AsyncClient, base_url: str, query: str, top_k: int, timeout: float
) -> RagAdvice:
    """POST /chat with an end-to-end deadline of `timeout` seconds; raises RagUnavailable."""
    url = base_url.rstrip("/") + "/chat"
    try:
        async with asyncio.timeout(timeout):  # httpx's timeouts are per phase; this bounds the whole call
            response = await client.post(url, json={"query": query, "top_k": top_k}, timeout=timeout)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise RagUnavailable("timeout", f"rag_api did not answer within {timeout}s") from exc
    except httpx.TransportError as exc:  # refused, reset, DNS: nobody to talk to
        raise RagUnavailable("unavailable", f"rag_api unreachable: {type(exc).__name__}") from exc
    if response.status_code == 503:
        raise RagUnavailable("unavailable", "rag_api answered 503")
    if response.status_code != 200:
        raise RagUnavailable("error", f"rag_api answered {response.status_code}")
    try:
        body = response.json()
        answer = body["answer"]
        if not isinstance(answer, str):
            raise TypeError("answer is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        raise RagUnavailable("error", f"rag_api answered a malformed body: {exc}") from exc
    return RagAdvice(answer=answer.strip(), sources=_parse_sources(body.get("sources")))


DEGRADED_WORDING = {
    "timeout": "rag_api did not answer in time",
    "unavailable": "rag_api was not available",
    "error": "rag_api answered with an error",
}


def explain(
    severity: str, confidence: float, advice: RagAdvice | None, degraded_reason: str = "unavailable"
) -> tuple[str, list[str]]:
    """(explanation, recommended actions) from the severity and, when there is one, the RAG advice."""
    head = f"Predicted severity {severity} (probability {confidence:.0%})."
    actions = list(BASE_ACTIONS.get(severity, []))
    if advice is None:
        return f"{head} No knowledge-base guidance: {DEGRADED_WORDING[degraded_reason]}.", actions
    titles = list(dict.fromkeys(s["title"] for s in advice.sources if s["title"]))  # one per article
    explanation = f"{head} {advice.answer}" if advice.answer else head
    if titles:
        if "Sources:" not in advice.answer:  # the generator may cite its sources already
            explanation += " Sources: " + "; ".join(titles) + "."
        actions.extend(f"Follow the knowledge-base article “{t}”." for t in titles)
    return explanation, actions


async def triage_advice(
    client: httpx.AsyncClient,
    base_url: str,
    text: str,
    severity: str,
    confidence: float,
    *,
    top_k: int,
    timeout: float,
) -> dict[str, Any]:
    """The RAG part of a /triage answer; counts triage outcome metrics."""
    started = time.perf_counter()
    try:
        advice = await ask_rag(client, base_url, build_query(text, severity), top_k, timeout)
    except RagUnavailable as exc:
        metrics.TRIAGE_RAG_DURATION.observe(time.perf_counter() - started)
        metrics.TRIAGE_DEGRADED_BY_REASON[exc.reason].inc()
        metrics.TRIAGE_BY_OUTCOME["degraded"].inc()
        log.warning("triage degraded (%s): %s", exc.reason, exc.detail)
        explanation, actions = explain(severity, confidence, None, exc.reason)
        return {
            "explanation": explanation,
            "recommended_actions": actions,
            "sources": [],
            "degraded": True,
            "degraded_reason": exc.reason,
            "degraded_detail": exc.detail,
        }
    metrics.TRIAGE_RAG_DURATION.observe(time.perf_counter() - started)
    metrics.TRIAGE_BY_OUTCOME["ok"].inc()
    explanation, actions = explain(severity, confidence, advice)
    return {
        "explanation": explanation,
        "recommended_actions": actions,
        "sources": advice.sources,
        "degraded": False,
        "degraded_reason": None,
        "degraded_detail": None,
    }
