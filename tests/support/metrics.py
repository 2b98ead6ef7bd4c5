"""Reading the in-process metrics registry (what a TestClient-driven app recorded)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of one sample; 0 for a series not recorded yet."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0
