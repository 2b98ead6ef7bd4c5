"""Support tickets: the four model features, their valid ranges, and a seeded synthetic generator.

Features (the request schema, the drift window and the reference sample all use exactly these):

| feature | type | valid range | meaning |
| --- | --- | --- | --- |
| `ticket_length` | int | 1 to 20000 | characters in the ticket body |
| `urgency_keywords` | int | 0 to 50 | count of words like "urgent", "outage", "down", "asap" |
| `business_impact` | float | 0 to 10 | impact score set by the reporter (one decimal) |
| `customer_tier` | int | 1 to 5 | support contract tier; 1 = basic (most customers), 5 = strategic |

Generator (`generate_tickets`), all draws from one `numpy.random.default_rng(seed)`:
- `business_impact` = round(10 · Beta(2, 3.5), 1)  — mean ≈ 3.6, right-skewed;
- `customer_tier` ~ Categorical(1..5, p = 0.40, 0.27, 0.17, 0.10, 0.06)  — skewed toward low tiers;
- `urgency_keywords` ~ Poisson(0.4 + 0.25 · business_impact), clipped to 0..50  — correlated with impact;
- `ticket_length` = round(LogNormal(ln 600, 0.8)), clipped to 1..20000  — median ≈ 600 characters.

Label rule (`severity`), noisy on purpose so no model can be perfect:
    score = 0.45 · business_impact + 0.9 · ln(1 + urgency_keywords) + 0.5 · (customer_tier - 1)
            + 0.3 · log10(ticket_length) + ε,   ε ~ Normal(0, 0.6)
    severity = low if score < 3.2, medium if < 4.4, high if < 5.5, else critical   (SEVERITY_CUTS)
then 3 % of the rows (`LABEL_FLIP_RATE`) move to an adjacent class at random (annotator disagreement).
That yields about 39 % low, 31 % medium, 19 % high and 11 % critical; the Bayes-optimal accuracy is
well below 100 % (the ε noise alone is ~0.5 of a class width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = ("ticket_length", "urgency_keywords", "business_impact", "customer_tier")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class FeatureRange:
    minimum: float
    maximum: float
    kind: type  # int or float
    unit: str


# The documented valid ranges: request validation, the model card and the docs all read these.
FEATURE_RANGES: dict[str, FeatureRange] = {
    "ticket_length": FeatureRange(1, 20000, int, "characters"),
    "urgency_keywords": FeatureRange(0, 50, int, "count"),
    "business_impact": FeatureRange(0.0, 10.0, float, "score"),
    "customer_tier": FeatureRange(1, 5, int, "tier"),
}

TIER_PROBABILITIES = (0.40, 0.27, 0.17, 0.10, 0.06)
LABEL_WEIGHTS = {
    "business_impact": 0.45,
    "ln1p_urgency_keywords": 0.9,
    "customer_tier_minus_1": 0.5,
    "log10_ticket_length": 0.3,
}
LABEL_NOISE_SD = 0.6
SEVERITY_CUTS = (3.2, 4.4, 5.5)
LABEL_FLIP_RATE = 0.03

LABEL_RULE = (
    "score = 0.45*business_impact + 0.9*ln(1+urgency_keywords) + 0.5*(customer_tier-1) "
    "+ 0.3*log10(ticket_length) + Normal(0, 0.6); "
    "severity = low <3.2 <= medium <4.4 <= high <5.5 <= critical; "
    "then 3% of labels move to an adjacent class at random"
)


def latent_score(frame: pd.DataFrame) -> np.ndarray:
    """The noiseless part of the label rule."""
    w = LABEL_WEIGHTS
    return (
        w["business_impact"] * frame["business_impact"].to_numpy(float)
        + w["ln1p_urgency_keywords"] * np.log1p(frame["urgency_keywords"].to_numpy(float))
        + w["customer_tier_minus_1"] * (frame["customer_tier"].to_numpy(float) - 1.0)
        + w["log10_ticket_length"] * np.log10(frame["ticket_length"].to_numpy(float))
    )


def generate_features(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Realistic feature distributions, inside the valid ranges."""
    impact = np.round(10.0 * rng.beta(2.0, 3.5, n), 1)
    tier = rng.choice(np.arange(1, 6), size=n, p=TIER_PROBABILITIES)
    keywords = np.clip(rng.poisson(0.4 + 0.25 * impact), 0, 50)
    length = np.clip(np.round(rng.lognormal(math.log(600.0), 0.8, n)), 1, 20000)
    return pd.DataFrame(
        {
            "ticket_length": length.astype(np.int64),
            "urgency_keywords": keywords.astype(np.int64),
            "business_impact": impact.astype(np.float64),
            "customer_tier": tier.astype(np.int64),
        }
    )


def generate_tickets(n: int, seed: int) -> pd.DataFrame:
    """`n` tickets (the FEATURES columns plus `severity`), reproducible for a given seed."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = np.random.default_rng(seed)
    frame = generate_features(n, rng)
    score = latent_score(frame) + rng.normal(0.0, LABEL_NOISE_SD, n)
    label = np.searchsorted(np.asarray(SEVERITY_CUTS), score, side="right")
    flip = rng.random(n) < LABEL_FLIP_RATE
    step = rng.choice(np.array([-1, 1]), size=n)
    label = np.where(flip, np.clip(label + step, 0, len(SEVERITIES) - 1), label)
    frame["severity"] = pd.Categorical.from_codes(label, categories=list(SEVERITIES))
    frame["severity"] = frame["severity"].astype(str)
    return frame
