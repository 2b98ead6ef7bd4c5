"""What the simulations send: drifted tickets, in-domain and out-of-domain questions.

Drifted tickets start from the training distribution (`ml_api.data.generate_tickets`, the very generator
the model was trained on) and move the chosen features by `amount` reference standard deviations, then clip
them to the valid ranges (the API would answer 422 otherwise) and round the integer features. `amount=0`
sends the training distribution itself: nothing drifts.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_QUERIES = ROOT / "rag_api" / "data" / "reference_queries.txt"
OUT_OF_DOMAIN_QUERIES = ROOT / "tests" / "data" / "out_of_domain_questions.txt"

# Used when the files above are missing (e.g. an installed package without the tests directory).
FALLBACK_IN_DOMAIN = (
    "How do I rotate an API key?",
    "What does API error code 429 mean?",
    "How many times do you retry a failed webhook delivery?",
    "How do I unlock my account after too many failed logins?",
)
FALLBACK_OUT_OF_DOMAIN = (
    "How long should I boil an egg for a runny yolk?",
    "Which spices go into a classic garam masala?",
    "Who won the football world cup in 1998?",
    "What is the best way to prune a rose bush?",
    "How far is the Moon from the Earth?",
    "Can you recommend a good science fiction novel?",
)

REFERENCE_SAMPLE = 20_000  # rows drawn to estimate the reference mean and standard deviation
DEFAULT_TRAIN_SEED = 42  # MLSettings.train_seed's default; the model card names the real one


def read_questions(path: Path, fallback: Sequence[str]) -> list[str]:
    """Non-empty, non-comment lines of `path`, or `fallback` when the file is missing or empty."""
    if path.exists():
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        found = [ln for ln in lines if ln and not ln.startswith("#")]
        if found:
            return found
    return list(fallback)


def in_domain_questions() -> list[str]:
    return read_questions(REFERENCE_QUERIES, FALLBACK_IN_DOMAIN)


def out_of_domain_questions() -> list[str]:
    return read_questions(OUT_OF_DOMAIN_QUERIES, FALLBACK_OUT_OF_DOMAIN)


def question_mix(ood_share: float, seed: int = 7) -> Iterator[tuple[str, bool]]:
    """Endless (question, is_out_of_domain) pairs, `ood_share` of them out of the knowledge base's domain."""
    rng = random.Random(seed)
    inside, outside = in_domain_questions(), out_of_domain_questions()
    for i in itertools.count():
        ood = rng.random() < ood_share
        pool = outside if ood else inside
        yield pool[i % len(pool)], ood


@dataclass(frozen=True)
class FeatureStats:
    name: str
    mean: float
    sd: float
    minimum: float
    maximum: float
    integer: bool


def reference_stats(train_seed: int = DEFAULT_TRAIN_SEED) -> dict[str, FeatureStats]:
    """Mean and standard deviation of every feature under the training distribution, with its valid range."""
    from ml_api.data import FEATURE_RANGES, FEATURES, generate_tickets

    frame = generate_tickets(REFERENCE_SAMPLE, seed=train_seed)
    stats = {}
    for name in FEATURES:
        r = FEATURE_RANGES[name]
        column = frame[name].astype(float)
        stats[name] = FeatureStats(
            name, float(column.mean()), float(column.std()), r.minimum, r.maximum, r.kind is int
        )
    return stats


def feature_names() -> tuple[str, ...]:
    from ml_api.data import FEATURES

    return FEATURES


def parse_features(text: str) -> list[str]:
    """`"a,b"` -> ["a", "b"], each checked against the model's features (ValueError naming a bad one)."""
    known = feature_names()
    chosen = [f.strip() for f in text.split(",") if f.strip()]
    if not chosen:
        raise ValueError("no feature given")
    for name in chosen:
        if name not in known:
            raise ValueError(f"unknown feature {name!r}; the model's features are {', '.join(known)}")
    return list(dict.fromkeys(chosen))


def shift(value: float, stats: FeatureStats, amount: float) -> float | int:
    """`value` moved by `amount` standard deviations, clipped to the valid range (integers stay integers)."""
    moved = min(max(value + amount * stats.sd, stats.minimum), stats.maximum)
    return round(moved) if stats.integer else round(moved, 1)


def drifted_tickets(
    features: Sequence[str], amount: float, *, train_seed: int = DEFAULT_TRAIN_SEED, seed: int = 20240917
) -> Iterator[dict[str, Any]]:
    """Endless tickets of the training distribution with `features` shifted by `amount` SDs."""
    from ml_api.data import FEATURES, generate_tickets

    stats = reference_stats(train_seed)
    for round_ in itertools.count():
        frame = generate_tickets(1000, seed=seed + round_)
        for row in frame[list(FEATURES)].to_dict(orient="records"):
            ticket: dict[str, Any] = {}
            for name in FEATURES:
                value = row[name]
                st = stats[name]
                if name in features:
                    ticket[name] = shift(float(value), st, amount)
                else:
                    ticket[name] = int(value) if st.integer else float(value)
            yield ticket
