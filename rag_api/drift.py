"""Query-embedding drift: are users still asking the questions the knowledge base was built for?

Reference: the embeddings of in-domain questions (`rag_api/data/reference_queries.txt`). A query's *novelty*
is 1 minus its mean cosine similarity to its 3 nearest reference questions (nearest neighbours, not the
centroid: in-domain questions cover many topics, so one centroid sits far from all of them). The reference's
own leave-one-out novelties give the cut-off: their `drift_outlier_quantile` (0.95 by default).

Score (the `llm_embedding_drift_score` gauge, 0 to 1) = the share of the recent window of queries whose
novelty exceeds that cut-off. In-domain traffic stays near 1 - quantile (~0.05-0.2); off-topic traffic goes
towards 1.
`drifted` = score above `drift_threshold`, judged only once the window holds `drift_min_samples` queries
(before that the gauge stays 0). The centroid shift of the window (1 - cosine of the window's mean embedding
with the reference mean) is reported alongside, for the curious.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from rag_api import metrics

log = logging.getLogger(__name__)

NEIGHBOURS = 3


def read_reference_queries(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class EmbeddingDriftMonitor:
    """Thread-safe: `observe` is called from the request path (a few microseconds of numpy)."""

    def __init__(
        self,
        reference: np.ndarray,
        *,
        window_size: int = 50,
        min_samples: int = 10,
        threshold: float = 0.3,
        quantile: float = 0.95,
    ) -> None:
        self.reference = np.asarray(reference, dtype=np.float32)
        self.window_size = window_size
        self.min_samples = min_samples
        self.threshold = threshold
        self.quantile = quantile
        self._window: deque[tuple[float, np.ndarray]] = deque(maxlen=window_size)
        self._lock = threading.Lock()
        self.centroid = _unit(self.reference.mean(axis=0)) if len(self.reference) else np.zeros(0)
        self.cutoff = self._reference_cutoff()

    @property
    def enabled(self) -> bool:
        return len(self.reference) > NEIGHBOURS

    def _reference_cutoff(self) -> float:
        if not self.enabled:
            return 1.0
        similarities = self.reference @ self.reference.T
        np.fill_diagonal(similarities, -np.inf)  # leave one out: a question is not its own neighbour
        nearest = -np.sort(-similarities, axis=1)[:, :NEIGHBOURS]
        return float(np.quantile(1.0 - nearest.mean(axis=1), self.quantile))

    def novelty(self, vectors: np.ndarray) -> np.ndarray:
        """1 - mean cosine similarity to the nearest reference questions, per row of `vectors`."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        similarities = vectors @ self.reference.T
        k = min(NEIGHBOURS, similarities.shape[1])
        nearest = -np.sort(-similarities, axis=1)[:, :k]
        return 1.0 - nearest.mean(axis=1)

    def observe(self, vector: np.ndarray) -> float:
        """Add one query embedding to the window; returns (and exports) the current score."""
        if not self.enabled:
            return 0.0
        novelty = float(self.novelty(vector)[0])
        with self._lock:
            self._window.append((novelty, np.asarray(vector, dtype=np.float32).reshape(-1)))
            score = self._score_locked()
        metrics.EMBEDDING_DRIFT.set(score if score is not None else 0.0)
        return score or 0.0

    def _score_locked(self) -> float | None:
        if len(self._window) < self.min_samples:
            return None
        return float(np.mean([n > self.cutoff for n, _ in self._window]))

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
        metrics.EMBEDDING_DRIFT.set(0.0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            score = self._score_locked()
            samples = len(self._window)
            novelties = [n for n, _ in self._window]
            shift = None
            if samples and self.enabled:
                window_centroid = _unit(np.mean([v for _, v in self._window], axis=0))
                shift = float(1.0 - window_centroid @ self.centroid)
        return {
            "enabled": self.enabled,
            "reference_queries": len(self.reference),
            "window_size": self.window_size,
            "window_samples": samples,
            "min_samples": self.min_samples,
            "sufficient": score is not None,
            "score": round(score, 4) if score is not None else None,
            "threshold": self.threshold,
            "drifted": bool(score is not None and score > self.threshold),
            "novelty_cutoff": round(self.cutoff, 4),
            "mean_novelty": round(float(np.mean(novelties)), 4) if novelties else None,
            "centroid_shift": round(shift, 4) if shift is not None else None,
        }


def build_drift_monitor(
    path: Path, embed: Any, *, window_size: int, min_samples: int, threshold: float, quantile: float
) -> EmbeddingDriftMonitor:
    queries = read_reference_queries(path)
    if len(queries) <= NEIGHBOURS:
        log.warning("embedding drift disabled: %s holds %d reference questions", path, len(queries))
    reference = embed(queries) if queries else np.zeros((0, 384), dtype=np.float32)
    return EmbeddingDriftMonitor(
        reference, window_size=window_size, min_samples=min_samples, threshold=threshold, quantile=quantile
    )
