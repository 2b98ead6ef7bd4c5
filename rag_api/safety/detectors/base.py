"""What every safety detector returns, and the fixed vocabularies the chain, metrics and docs rely on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

PII_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "US_DRIVER_LICENSE", "SECRET")


@dataclass(frozen=True)
class PIIEntity:
    """One piece of structured personal data (or a secret) found at text[start:end]."""

    type: str  # one of PII_TYPES
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class DetectorResult:
    """score in [0, 1]; category from the detector's CATEGORIES ("none" when nothing was found)."""

    score: float
    category: str
    entities: tuple[PIIEntity, ...] = ()


class Detector(Protocol):
    threshold: float

    @property
    def name(self) -> str: ...

    @property
    def categories(self) -> tuple[str, ...]: ...

    def score(
        self, text: str, embedding: np.ndarray | None = None, sentence_embeddings: np.ndarray | None = None
    ) -> DetectorResult: ...


def noisy_or(*probabilities: float) -> float:
    """P(at least one independent signal is right): combines evidence without exceeding 1."""
    remaining = 1.0
    for p in probabilities:
        remaining *= 1.0 - min(max(p, 0.0), 1.0)
    return 1.0 - remaining
