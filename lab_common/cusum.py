"""In-service CUSUM: Page's two-sided cumulative sum on a service's own signal, exported as gauges.

PromQL cannot carry a state from one evaluation to the next, so the CUSUM the anomaly rules cannot express
(monitoring/anomaly.py) runs here, in the service, and Prometheus only reads its result:
`<prefix>_cusum_score{signal, direction}` (the `service` label comes from the scrape target), the statistic
as a share of its decision interval: 1 = an alarm (`...CusumAnomaly` alerts, declared in
monitoring/alerts/alerts.yaml).

How it works, per signal and scrape-like interval (`CusumParams`, knobs in lab_common/settings.py):
- the signal is an interval aggregate read from a histogram the service already keeps (`HistogramQuantile`:
  the median of the requests that ended in the interval, interpolated in the buckets like
  `histogram_quantile`), so the hot path pays nothing: no call per request;
- baseline: the median of the last `baseline_points` values of the signal itself, spread 1.4826 x their MAD
  (robust: a spike does not move either), floored at `rel_floor` x |median| and at `abs_floor`; nothing is
  scored before `warmup_points` values (the gauges read 0, "no evidence");
- z = (x - median) / spread, winsorised at +-`clip` spreads: one outlier interval (a GC pause, a neighbour's
  burst of CPU) cannot raise an alarm alone, a fault that lasts a few intervals does;
- S_up = max(0, S_up + z - k), S_down = max(0, S_down - z - k) (k: `slack`, in spreads), alarm at S >= h
  (`decision`). Noise below k drains the sums; a shift or a ramp of more than k accumulates;
- no reset at an alarm (a gauge read every scrape must stay up while the signal is out of control): instead
  S is held under `cap` x h, so S falls back under h within (cap - 1) x h / k normal intervals once the fault
  ends, and the baseline keeps learning every value, so a change that persists becomes the new normal once it
  fills half the baseline window (the alarm then decays: a documented end, not a page forever);
- bounded memory: a deque of `baseline_points` floats per signal; NaN or infinite values (an interval without
  requests) are skipped and counted, never scored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

log = logging.getLogger(__name__)
MAD_TO_SIGMA = 1.4826  # a normal law's standard deviation is 1.4826 times its median absolute deviation
DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class CusumParams:
    """Slack, decision interval and clip in spreads; the baseline window and the warm-up in values."""

    # k: what noise may add per interval. 0.75 spread, not the textbook 0.5: the lab's healthy latency is
    # noisier than gaussian, and a wave of a few minutes (inside the baseline) must drain, not accumulate.
    slack: float = 0.75
    # h: for gaussian noise, ~10^7 intervals between false alarms per direction (Siegmund's approximation); a
    # sustained shift of d spreads alarms after about h / (d - k) intervals.
    decision: float = 10.0
    clip: float = 3.0  # |z| counts at most this much: an alarm takes at least h / (clip - k) = 5 intervals
    cap: float = 2.0  # S is held under cap x h
    baseline_points: int = 120
    warmup_points: int = 24
    rel_floor: float = 0.1  # the spread is at least this share of |median| ...
    abs_floor: float = 0.0  # ... and at least this, in the signal's unit

    def __post_init__(self) -> None:
        if not (self.slack >= 0 and self.decision > 0 and self.clip > self.slack and self.cap >= 1):
            raise ValueError(f"CUSUM needs slack >= 0, decision > 0, clip > slack, cap >= 1: {self}")
        if not 2 <= self.warmup_points <= self.baseline_points:
            raise ValueError(f"CUSUM needs 2 <= warmup_points <= baseline_points: {self}")


class Cusum:
    """Two-sided Page's CUSUM on standardised values; `update(x)` once per interval."""

    def __init__(self, params: CusumParams) -> None:
        self.params = params
        self.up = 0.0
        self.down = 0.0
        self.skipped = 0  # values that were not finite
        self._baseline: deque[float] = deque(maxlen=params.baseline_points)

    @property
    def ready(self) -> bool:
        return len(self._baseline) >= self.params.warmup_points

    def baseline(self) -> tuple[float, float]:
        """(median, spread) of the values in the baseline window."""
        values = self._baseline
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values)
        p = self.params
        return median, max(MAD_TO_SIGMA * mad, p.rel_floor * abs(median), p.abs_floor, 1e-12)

    def update(self, x: float) -> None:
        if not math.isfinite(x):
            self.skipped += 1
            return
        if self.ready:
            p = self.params
            median, spread = self.baseline()
            z = min(max((x - median) / spread, -p.clip), p.clip)
            ceiling = p.cap * p.decision
            self.up = min(ceiling, max(0.0, self.up + z - p.slack))
            self.down = min(ceiling, max(0.0, self.down - z - p.slack))
        self._baseline.append(x)

    def score(self, direction: str) -> float:
        """The statistic as a share of the decision interval: >= 1 is an alarm."""
        return (self.up if direction == "up" else self.down) / self.params.decision


class HistogramQuantile:
    """The `q` quantile of the observations a histogram (or several children, summed) received since the
    previous read, interpolated linearly inside its bucket as `histogram_quantile` does. NaN when fewer than
    `min_count` observations arrived: too few to say anything.

    Reads the children's bucket counters (this process's own values in multiprocess mode), so it costs
    nothing per observation; deferred observations must be flushed first (`CusumMonitor.tick` does)."""

    def __init__(self, children: Sequence[Any], q: float = 0.5, min_count: int = 3) -> None:
        if not 0 < q < 1:
            raise ValueError(f"quantile must be in (0, 1), got {q}")
        self.children = tuple(children)
        self.q, self.min_count = q, min_count
        self.bounds: tuple[float, ...] = tuple(self.children[0]._upper_bounds)
        self._last = self._counts()

    def _counts(self) -> list[float]:
        totals = [0.0] * len(self.bounds)
        for child in self.children:
            for i, bucket in enumerate(child._buckets):  # per-bucket (not cumulative) counts
                totals[i] += bucket.get()
        return totals

    def read(self) -> float:
        counts = self._counts()
        delta = [now - before for now, before in zip(counts, self._last, strict=True)]
        self._last = counts
        return interpolated_quantile(self.bounds, delta, self.q, self.min_count)


def interpolated_quantile(
    bounds: Sequence[float], counts: Sequence[float], q: float, min_count: int
) -> float:
    """histogram_quantile over per-bucket counts (`bounds` ascending, the last +Inf)."""
    total = sum(counts)
    if total < max(min_count, 1):
        return math.nan
    rank, below, lower = q * total, 0.0, 0.0
    for upper, count in zip(bounds, counts, strict=True):
        if count > 0 and below + count >= rank:
            if math.isinf(upper):
                return lower  # as histogram_quantile: the highest finite bound
            return lower + (upper - lower) * (rank - below) / count
        below += count
        lower = upper if not math.isinf(upper) else lower
    return lower


@dataclass
class Watched:
    """One signal: its name (the `signal` label), how to read it, its detector."""

    name: str
    read: Callable[[], float]
    detector: Cusum


class CusumMonitor:
    """Updates every watched signal's detector and its gauges; `tick()` once per interval."""

    def __init__(self, gauge: Gauge, watched: Sequence[Watched], flush: Callable[[], None]) -> None:
        self.gauge, self.watched, self.flush = gauge, tuple(watched), flush
        self._children = {(w.name, d): gauge.labels(w.name, d) for w in self.watched for d in DIRECTIONS}
        for child in self._children.values():
            child.set(0.0)  # present from the start: "no evidence" until the warm-up is over

    def tick(self) -> None:
        self.flush()  # fold the deferred observations in: the interval's requests are all counted
        for w in self.watched:
            try:
                w.detector.update(w.read())
            except Exception:  # a broken signal must not stop the others nor the service
                log.exception("CUSUM signal %s failed", w.name)
                continue
            for direction in DIRECTIONS:
                self._children[w.name, direction].set(w.detector.score(direction))


def cusum_gauge(prefix: str) -> Gauge:
    return Gauge(
        f"{prefix}_cusum_score",
        "In-service two-sided CUSUM of a signal as a share of its decision interval (>= 1: an alarm).",
        ["signal", "direction"],
        multiprocess_mode="livemax",
    )


@dataclass(frozen=True)
class LatencyCusum:
    """What a service watches: its gauge (`<prefix>_cusum_score`, declared in its metrics.py) and the
    (endpoint, method) routes of its request duration histogram that make the `latency` signal."""

    gauge: Gauge
    routes: tuple[tuple[str, str], ...]


def latency_monitor(gauge: Gauge, duration: Any, routes: Sequence[tuple[str, str]], params: CusumParams,
                    flush: Callable[[], None]) -> CusumMonitor:  # fmt: skip
    """The `latency` signal: the median latency of `routes` ((endpoint, method) children of the request
    duration histogram) per interval."""
    signal = HistogramQuantile([duration.labels(endpoint, method) for endpoint, method in routes])
    return CusumMonitor(gauge, [Watched("latency", signal.read, Cusum(params))], flush)


async def run_every(monitor: CusumMonitor, interval_seconds: float) -> None:
    """The monitor's clock, as a task of the service's lifespan: each tick in a worker thread (a flush of
    deferred observations can take milliseconds under load; the event loop serves requests meanwhile)."""
    while True:
        await asyncio.sleep(interval_seconds)
        await asyncio.to_thread(monitor.tick)
