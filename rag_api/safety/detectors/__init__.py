"""Safety detectors: prompt injection, toxicity, PII; each `.score(text, embedding=None) -> DetectorResult`.

| check | categories | default threshold |
| --- | --- | --- |
| prompt_injection | none, instruction_override, role_play, prompt_extraction, jailbreak, semantic | 0.5 |
| toxicity | none, hate, threat, insult, profanity, sexual, semantic | 0.5 |
| pii | none, email, phone, credit_card, us_ssn, iban, ip_address, us_driver_license, secret | 0.5 |

`semantic` = flagged by the embedding head alone, no pattern matched. The embedding-based parts take a
precomputed MiniLM vector (rag_api embeds the query for retrieval anyway); without one they embed the text
themselves when built with an embedder, else they fall back to their pure-text signals.

In the chain (cost: well under 1 ms of CPU per /chat, see docs/benchmarks.md "Safety detectors"):

    detectors = build_detectors()  # no embedder: nothing is embedded behind the caller's back
    verdict = detectors["prompt_injection"].score(query, query_vector)  # the vector retrieval computed
    found = detectors["pii"].score(answer)
    safe_answer = detectors["pii"].redact(answer, found.entities)  # "[REDACTED_EMAIL]" ...

The batch scorer (`python -m rag_api.safety`) builds them with MiniLM and also scores each sentence.
"""

from __future__ import annotations

from collections.abc import Mapping

from rag_api.safety.detectors.base import PII_TYPES, Detector, DetectorResult, PIIEntity
from rag_api.safety.detectors.head import Embedder, EmbeddingHead
from rag_api.safety.detectors.injection import InjectionDetector
from rag_api.safety.detectors.pii import PIIDetector
from rag_api.safety.detectors.toxicity import ToxicityDetector

__all__ = [
    "DEFAULT_THRESHOLD",
    "PII_TYPES",
    "Detector",
    "DetectorResult",
    "EmbeddingHead",
    "InjectionDetector",
    "PIIDetector",
    "PIIEntity",
    "ToxicityDetector",
    "build_detectors",
]


DEFAULT_THRESHOLD = 0.5  # every check: scores are calibrated so that 0.5 means "more likely unsafe than not"


def build_detectors(
    embedder: Embedder | None = None, thresholds: Mapping[str, float] | None = None
) -> dict[str, Detector]:
    """The three detectors by check name, with the shipped embedding heads (pure text if a head is absent).

    thresholds: per-check overrides of DEFAULT_THRESHOLD (the chain passes its settings here).
    """
    chosen = {name: DEFAULT_THRESHOLD for name in ("prompt_injection", "toxicity", "pii")}
    unknown = set(thresholds or {}) - set(chosen)
    if unknown:
        raise ValueError(f"unknown check in thresholds: {', '.join(sorted(unknown))}")
    chosen.update(thresholds or {})
    return {
        "prompt_injection": InjectionDetector(
            EmbeddingHead.load("prompt_injection"), embedder, chosen["prompt_injection"]
        ),
        "toxicity": ToxicityDetector(EmbeddingHead.load("toxicity"), embedder, chosen["toxicity"]),
        "pii": PIIDetector(chosen["pii"]),
    }
