"""A logistic-regression head over MiniLM sentence embeddings, stored as JSON next to this file.

The weights are trained by `python -m rag_api.safety.detectors.train` on the project's own corpus
(corpus/); nothing is downloaded. The chain passes the query embedding rag_api already computed for
retrieval, so the head costs one dot product; with no embedding and no embedder it is skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from rag_api.safety.detectors.base import DetectorResult, noisy_or
from rag_api.safety.detectors.patterns import match_patterns

MODELS_DIR = Path(__file__).resolve().parent / "models"
MAX_SENTENCES = 8  # bounds the cost of a long text; an attack or insult rarely hides past the eighth sentence
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text's sentences if it has more than one (an attack often follows an innocent opening), else []."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if len(p.strip()) > 3]
    return parts[:MAX_SENTENCES] if len(parts) > 1 else []


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class EmbeddingHead:
    def __init__(self, coef: np.ndarray, intercept: float, meta: dict | None = None) -> None:
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = float(intercept)
        self.meta = meta or {}

    @classmethod
    def load(cls, name: str, directory: Path = MODELS_DIR) -> EmbeddingHead | None:
        path = directory / f"{name}.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(np.array(data["coef"]), data["intercept"], data.get("meta"))

    def save(self, name: str, directory: Path = MODELS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.json"
        payload = {
            "meta": self.meta,
            "intercept": self.intercept,
            "coef": [round(float(c), 6) for c in self.coef],
        }
        path.write_text(json.dumps(payload, indent=0) + "\n", encoding="utf-8")
        return path

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = np.asarray(embeddings, dtype=np.float32) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def predict(
        self,
        text: str,
        embedding: np.ndarray | None,
        embedder: Embedder | None,
        sentence_embeddings: np.ndarray | None = None,
    ) -> float | None:
        """Highest probability over the whole text and its sentences; what is not given is embedded when an
        embedder is at hand, else left out (None when there is nothing to score)."""
        if embedding is None and embedder is not None:
            embedding = embedder.embed([text])[0]
        if sentence_embeddings is None and embedder is not None:
            parts = sentences(text)
            sentence_embeddings = embedder.embed(parts) if parts else None
        dimensions = len(self.coef)
        vectors = [
            np.asarray(v).reshape(-1, dimensions) for v in (embedding, sentence_embeddings) if v is not None
        ]
        if not vectors:
            return None
        return float(self.probabilities(np.vstack(vectors)).max())


class LexiconHeadDetector:
    """A lexicon (noisy-OR of weighted patterns) and an optional embedding head, combined by noisy-OR.

    threshold 0.5: one strong pattern (weight ≥ 0.5) alone, two medium ones, or the head's p ≥ 0.5.
    """

    name = ""
    categories: tuple[str, ...] = ("none", "semantic")
    patterns: tuple = ()

    def __init__(
        self, head: EmbeddingHead | None = None, embedder: Embedder | None = None, threshold: float = 0.5
    ):
        self.head = head
        self.embedder = embedder
        self.threshold = threshold

    def normalise(self, text: str) -> str:
        return text

    def score(
        self, text: str, embedding: np.ndarray | None = None, sentence_embeddings: np.ndarray | None = None
    ) -> DetectorResult:
        """embedding: the whole text's MiniLM vector if the caller has it (rag_api's query vector);
        sentence_embeddings: one row per `sentences(text)` item, if computed (the batch scorer does)."""
        pattern_score, category = match_patterns(self.normalise(text), self.patterns)
        model_score = None
        if self.head is not None:
            model_score = self.head.predict(text, embedding, self.embedder, sentence_embeddings)
        if model_score is None:
            return DetectorResult(pattern_score, category)
        score = noisy_or(pattern_score, model_score)
        if category == "none" and score >= self.threshold:
            category = "semantic"
        return DetectorResult(score, category)
