"""Prompt injection and jailbreak attempts in a user's message (English and German).

Two signals: hand-written phrase patterns (lexicons/injection.tsv: instruction override, role play, prompt
extraction, jailbreak, task switch), and, when an embedding is available, a logistic head over MiniLM
sentence embeddings trained on the project's own written corpus (corpus/README.md). Score = noisy-OR.
"""

from __future__ import annotations

import numpy as np

from rag_api.safety.detectors.base import DetectorResult, noisy_or
from rag_api.safety.detectors.head import Embedder, EmbeddingHead
from rag_api.safety.detectors.patterns import load_lexicon, match_patterns

PATTERNS = load_lexicon("injection")


class InjectionDetector:
    """threshold 0.5: any strong pattern alone (≥ 0.7), a medium pair, or the embedding head's p ≥ 0.5."""

    name = "prompt_injection"
    categories = ("none", "instruction_override", "role_play", "prompt_extraction", "jailbreak", "semantic")

    def __init__(
        self, head: EmbeddingHead | None = None, embedder: Embedder | None = None, threshold: float = 0.5
    ):
        self.head = head
        self.embedder = embedder
        self.threshold = threshold

    def score(self, text: str, embedding: np.ndarray | None = None) -> DetectorResult:
        pattern_score, category = match_patterns(text, PATTERNS)
        model_score = self.head.predict(text, embedding, self.embedder) if self.head else None
        if model_score is None:
            return DetectorResult(pattern_score, category)
        score = noisy_or(pattern_score, model_score)
        if category == "none" and score >= self.threshold:
            category = "semantic"
        return DetectorResult(score, category)
