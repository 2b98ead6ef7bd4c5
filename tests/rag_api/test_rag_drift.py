"""Query-embedding drift: high on off-topic questions, low on held-out in-domain ones (real embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from rag_api.drift import EmbeddingDriftMonitor, build_drift_monitor, read_reference_queries
from rag_api.embeddings import get_embedder
from rag_api.settings import DEFAULT_REFERENCE_QUERIES

DATA = Path(__file__).parents[1] / "data"


def lines(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


@pytest.fixture(scope="module")
def monitor_factory():
    embed = get_embedder().embed

    def make(window_size: int = 40) -> EmbeddingDriftMonitor:
        return build_drift_monitor(
            DEFAULT_REFERENCE_QUERIES,
            embed,
            window_size=window_size,
            min_samples=10,
            threshold=0.3,
            quantile=0.95,
        )

    return make


@pytest.fixture(scope="module")
def held_out_in_domain() -> list[str]:
    reference = set(read_reference_queries(DEFAULT_REFERENCE_QUERIES))
    rows = [
        json.loads(line) for line in (DATA / "retrieval_questions.jsonl").read_text().splitlines() if line
    ]
    questions = [row["question"] for row in rows if row["question"] not in reference]
    assert len(questions) >= 20
    return questions


def feed(monitor: EmbeddingDriftMonitor, questions: list[str]) -> float:
    score = 0.0
    for vector in get_embedder().embed(questions):
        score = monitor.observe(vector)
    return score


def test_reference_questions_exist_and_enable_the_monitor(monitor_factory) -> None:
    monitor = monitor_factory()
    assert monitor.enabled and len(monitor.reference) >= 30
    assert 0.0 < monitor.cutoff < 1.0


def test_drift_stays_low_on_held_out_in_domain_questions(monitor_factory, held_out_in_domain) -> None:
    monitor = monitor_factory()
    score = feed(monitor, held_out_in_domain[:40])
    snapshot = monitor.snapshot()
    print(f"in-domain drift score {score:.3f}")
    assert score < monitor.threshold
    assert snapshot["sufficient"] and not snapshot["drifted"]
    assert REGISTRY.get_sample_value("llm_embedding_drift_score") == pytest.approx(score)


def test_drift_rises_on_out_of_domain_questions(monitor_factory, held_out_in_domain) -> None:
    monitor = monitor_factory()
    feed(monitor, held_out_in_domain[:40])
    in_domain = monitor.snapshot()
    out_of_domain_questions = lines(DATA / "out_of_domain_questions.txt")
    score = feed(monitor, out_of_domain_questions[:40])  # the window (40) now holds only off-topic questions
    snapshot = monitor.snapshot()
    print(f"out-of-domain drift score {score:.3f}")
    assert score > 0.7 and snapshot["drifted"]
    assert snapshot["centroid_shift"] > in_domain["centroid_shift"]
    assert snapshot["mean_novelty"] > in_domain["mean_novelty"]


def test_a_partial_shift_gives_a_partial_score(monitor_factory, held_out_in_domain) -> None:
    monitor = monitor_factory(window_size=40)
    mixed = held_out_in_domain[:20] + lines(DATA / "out_of_domain_questions.txt")[:20]
    score = feed(monitor, mixed)
    assert 0.3 < score < 0.8


def test_no_verdict_before_the_window_holds_enough_queries(monitor_factory) -> None:
    monitor = monitor_factory()
    feed(monitor, lines(DATA / "out_of_domain_questions.txt")[:5])
    snapshot = monitor.snapshot()
    assert not snapshot["sufficient"] and snapshot["score"] is None and not snapshot["drifted"]


def test_missing_reference_disables_drift(tmp_path: Path) -> None:
    monitor = build_drift_monitor(
        tmp_path / "none.txt",
        get_embedder().embed,
        window_size=10,
        min_samples=1,
        threshold=0.3,
        quantile=0.95,
    )
    assert not monitor.enabled
    assert monitor.observe(np.ones(384, dtype=np.float32) / np.sqrt(384)) == 0.0
