"""A logistic-regression head over MiniLM sentence embeddings, stored as JSON next to this file.

The weights are trained by `python -m rag_api.safety.detectors.train` on the project's own corpus
(corpus/); nothing is downloaded. The chain passes the query embedding rag_api already computed for
retrieval, so the head costs one dot product; with no embedding and no embedder it is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent / "models"


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

    def predict(self, text: str, embedding: np.ndarray | None, embedder: Embedder | None) -> float | None:
        if embedding is None:
            if embedder is None:
                return None
            embedding = embedder.embed([text])[0]
        return float(self.probabilities(np.asarray(embedding).reshape(1, -1))[0])
