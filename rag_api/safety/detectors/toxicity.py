"""Toxic language (hate, insults, threats, profanity, sexual harassment) in a message or an answer.

Signals: a hand-written lexicon (lexicons/toxicity.tsv, English and German) matched after undoing common
obfuscation (f*ck, sh1t, fuuuck), and, when an embedding is available, a logistic head over MiniLM
embeddings trained on the project's own corpus. Score = noisy-OR.
"""

from __future__ import annotations

import re

import numpy as np

from rag_api.safety.detectors.base import DetectorResult, noisy_or
from rag_api.safety.detectors.head import Embedder, EmbeddingHead
from rag_api.safety.detectors.patterns import load_lexicon, match_patterns

_LEET = str.maketrans(
    {"@": "a", "4": "a", "$": "s", "5": "s", "0": "o", "1": "i", "!": "i", "3": "e", "7": "t"}
)
_MASKED = re.compile(r"(?<=[a-z])[*#%]+(?=[a-z])")  # f*ck, sh#t: the mask stands for vowels
_REPEATS = re.compile(r"([a-z])\1{2,}")

LEXICON = load_lexicon("toxicity")  # hate, threat, insult, profanity, sexual


def normalise(text: str) -> str:
    """Lower-case, undo leetspeak inside words and masks, squeeze letter runs (fuuuck → fuuck)."""
    lowered = text.lower()
    words = [w.translate(_LEET) if any(c.isalpha() for c in w) else w for w in lowered.split()]
    joined = _REPEATS.sub(r"\1\1", " ".join(words))
    if _MASKED.search(joined):  # the hidden vowel is unknown: read both "f*ck" → fuck and "sh*t" → shit
        joined = _MASKED.sub("u", joined) + "\n" + _MASKED.sub("i", joined)
    return joined


class ToxicityDetector:
    """threshold 0.5: any profanity, insult or slur in the lexicon, or the embedding head's p ≥ 0.5."""

    name = "toxicity"
    categories = ("none", "hate", "threat", "insult", "profanity", "sexual", "semantic")

    def __init__(
        self, head: EmbeddingHead | None = None, embedder: Embedder | None = None, threshold: float = 0.5
    ):
        self.head = head
        self.embedder = embedder
        self.threshold = threshold

    def score(self, text: str, embedding: np.ndarray | None = None) -> DetectorResult:
        lexicon_score, category = match_patterns(normalise(text), LEXICON)
        model_score = self.head.predict(text, embedding, self.embedder) if self.head else None
        if model_score is None:
            return DetectorResult(lexicon_score, category)
        score = noisy_or(lexicon_score, model_score)
        if category == "none" and score >= self.threshold:
            category = "semantic"
        return DetectorResult(score, category)
