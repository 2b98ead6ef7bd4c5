"""lab_common.metrics deferred histograms: after a flush, the exposition equals Histogram.observe's."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lab_common.metrics import DeferredHistogram, DeferredHistograms


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_deferred_histograms_equal_observe_one_by_one() -> None:
    rng = np.random.default_rng(7)
    buckets = {"a": (0.1, 0.5, 1.0, 2.0), "b": (1.0, 10.0, 100.0), "c": (0.001, 0.01, 0.1)}
    direct, deferred = CollectorRegistry(), CollectorRegistry()
    expected = {n: Histogram(f"x_{n}", n, buckets=b, registry=direct) for n, b in buckets.items()}
    actual = {n: Histogram(f"x_{n}", n, buckets=b, registry=deferred) for n, b in buckets.items()}
    group = DeferredHistograms([actual["a"], actual["b"]])
    single = DeferredHistogram(actual["c"])
    # values on the bucket bounds too: a value equal to a bound belongs to that bucket (le)
    pairs = zip(rng.exponential(0.7, 500), rng.integers(0, 150, 500), strict=True)
    rows = [(float(a), float(b)) for a, b in pairs]
    rows += [(0.5, 10.0), (2.0, 100.0), (3.0, 1000.0)]
    for a, b in rows:
        expected["a"].observe(a)
        expected["b"].observe(b)
        group.observe((a, b))
    for c in [*rng.exponential(0.02, 300), 0.01, 0.1]:
        expected["c"].observe(float(c))
        single.observe(float(c))
    assert samples(deferred)[("x_a_count", "")] == 0  # nothing is counted before the flush
    group.flush()
    single.flush()
    want = samples(direct)
    assert want[("x_a_count", "")] == len(rows)
    # bucket counts exactly; sums up to float summation order
    assert samples(deferred) == pytest.approx(want, rel=1e-12)
    group.flush()  # a second flush adds nothing
    assert samples(deferred) == pytest.approx(want, rel=1e-12)


def test_observations_past_the_pending_bound_are_flushed_not_dropped() -> None:
    """Issue 11 #10: more observations between two flushes than the queue holds (4 clients posting
    1,000-ticket batches overflowed it between the 5 s flushes, losing 37 %): the observer flushes them."""
    registry = CollectorRegistry()
    single = DeferredHistogram(
        Histogram("x_single", "s", buckets=(0.75,), registry=registry), max_pending=100
    )
    both = [Histogram(f"x_{n}", n, buckets=(1.0,), registry=registry) for n in ("a", "b")]
    group = DeferredHistograms(both, max_pending=100)
    for i in range(1_000):
        single.observe(i % 3 * 0.5)
        group.observe((0.5, 2.0))
    single.flush()
    group.flush()
    counted = samples(registry)
    assert counted[("x_single_count", "")] == 1_000
    assert counted[("x_single_bucket", "0.75")] == 667  # the 0s and 0.5s, not the 1.0s
    assert counted[("x_a_count", "")] == counted[("x_b_count", "")] == 1_000
    assert single.dropped_count == group.dropped_count == 0


def test_observations_that_cannot_be_folded_are_counted_as_dropped() -> None:
    registry = CollectorRegistry()
    dropped = Counter("x_dropped", "d", ["queue"], registry=registry)
    deferred = DeferredHistogram(
        Histogram("x_h", "h", buckets=(1.0,), registry=registry), dropped=dropped.labels("q")
    )
    deferred.observe(0.5)
    deferred.observe("not a number")  # type: ignore[arg-type]  # the flush cannot fold this batch
    deferred.flush()  # must not raise into the request path or the flush thread
    assert samples(registry)[("x_dropped_total", "")] == 2
    assert deferred.dropped_count == 2
    deferred.observe(0.5)
    deferred.flush()
    assert samples(registry)[("x_h_count", "")] == 1
