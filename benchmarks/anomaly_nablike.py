"""Synthetic set E: series shaped like the Numenta Anomaly Benchmark's held-out categories, to choose the
anomaly rules on without touching NAB's files (`python -m benchmarks.anomaly_synth --set E --output DIR`).

Each family imitates one kind of NAB series (what its description and plots show, not its values):
- `counts`: Poisson counts on a daily cycle (realTweets mentions, realAdExchange clicks): bursts of hours, a
  lasting rise;
- `taxi`: daily and weekly seasonality, integers (nyc_taxi): a holiday-like day, a surge, a collapse;
- `machine`: a noisy stable temperature that drifts slowly, then fails (machine_temperature): the failure's
  drift start, a short dip;
- `cloud`: quantised values with long flat runs (AWS CloudWatch CPU, network): a step, a huge single point;
- `traffic`: rush-hour speed dips on weekdays, integers, 10 % of the rows missing (realTraffic's irregular
  sampling): a slowdown outside the rush hours;
- `price`: an hourly heavy-tailed price with a 24-point cycle and missing hours (realAdExchange CPC): a
  change of level;
- `outliers`: an autocorrelated series with a few huge outliers in the probationary 15 %: a shift later.
Lengths vary from 1,600 to 16,000 points. `series` anomalous series per family get one to three anomalies
(windows as NAB draws them: 10 % of the length split between them, centred on each start); a third as many
get none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

DAY = 288  # five-minute points a day
Generator = np.random.Generator


def daily(n: int, period: int = DAY, phase: float = 0.0) -> np.ndarray:
    return np.sin(2 * np.pi * (np.arange(n) / period) + phase)


def stretch(x: np.ndarray, at: int, length: int) -> slice:
    """The rows [at, at + length) that exist."""
    return slice(at, min(at + length, len(x)))


def counts(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    rate = rng.uniform(2, 40) * (1 + 0.6 * daily(n, phase=rng.uniform(0, 6)))
    rate = rate * np.where(rng.random(n) < 0.01, rng.uniform(1.5, 3, n), 1)  # routine bursts
    for at in starts:
        if rng.random() < 0.5:
            rate[stretch(rate, at, int(rng.integers(6, 36)))] *= rng.uniform(4, 10)
        else:
            rate[at:] *= rng.uniform(1.8, 3)
    return rng.poisson(np.clip(rate, 0.1, None)).astype(float)


def taxi(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    t = np.arange(n)
    profile = 1 + 0.45 * daily(n, phase=-1.5) + 0.2 * daily(n, DAY // 2)
    weekend = (t // DAY) % 7 >= 5
    level = rng.uniform(5_000, 20_000) * np.where(weekend, 0.8, 1.0)
    x = level * profile * (1 + rng.normal(0, 0.03, n))
    for at in starts:
        kind = rng.choice(["holiday", "surge", "collapse"])
        if kind == "holiday":
            x[stretch(x, at, DAY)] *= 0.6
        else:
            x[stretch(x, at, int(rng.integers(6, 24)))] *= 1.6 if kind == "surge" else 0.3
    return np.round(np.clip(x, 0, None))


def machine(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 0.4)
    x = rng.uniform(70, 95) + noise + 2 * daily(n, phase=rng.uniform(0, 6))
    for at in starts:
        if rng.random() < 0.6:  # slow drift for a day or two, then the failure, then the repair
            drift = stretch(x, at, int(rng.integers(DAY, 2 * DAY)))
            x[drift] -= np.linspace(0, rng.uniform(5, 12), drift.stop - drift.start)
            failed = stretch(x, drift.stop, 36)
            x[failed] = rng.uniform(15, 40) + rng.normal(0, 1, failed.stop - failed.start)
        else:
            x[stretch(x, at, int(rng.integers(3, 12)))] -= rng.uniform(10, 25)
    return x


def cloud(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    step = rng.choice([0.01, 0.1, 1.0])
    level = rng.uniform(1, 60)
    mean_run = rng.choice([3, 40])
    x = np.empty(n)
    i = 0
    while i < n:  # flat runs of geometric length, each at a value near the level
        run = int(rng.geometric(1 / mean_run))
        x[i : i + run] = level * (1 + rng.normal(0, 0.05))
        i += run
    for at in starts:
        if rng.random() < 0.5:
            x[at:] *= rng.uniform(1.5, 3)
        else:
            x[at] = level * rng.uniform(3, 10)
    return np.round(x / step) * step


def traffic(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    t = np.arange(n)
    hour = (t % DAY) / 12
    weekday = (t // DAY) % 7 < 5
    rush = weekday & (((hour > 7) & (hour < 9)) | ((hour > 16) & (hour < 18.5)))
    x = rng.uniform(55, 70) - rush * rng.uniform(15, 30) + rng.normal(0, 3, n)
    for at in starts:
        slow = stretch(x, at, int(rng.integers(12, 36)))
        x[slow] = rng.uniform(8, 20) + rng.normal(0, 2, slow.stop - slow.start)
    return np.round(np.clip(x, 0, None))


def price(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    cycle = 1 + 0.3 * daily(n, period=24)  # hourly data: a day is 24 points
    x = rng.uniform(0.2, 3) * cycle * rng.lognormal(0, 0.35, n)
    for at in starts:
        x[at:] *= rng.choice([rng.uniform(1.8, 3), rng.uniform(0.05, 0.4)])
    return np.round(x, 3)


def outliers(n: int, starts: list[int], rng: Generator) -> np.ndarray:
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.7 * noise[i - 1] + rng.normal(0, 1)
    x = rng.uniform(-50, 50) + noise
    early = rng.choice(int(0.15 * n), 3, replace=False)
    x[early] += rng.choice([-1, 1], 3) * rng.uniform(30, 80, 3)
    for at in starts:
        x[at:] += rng.choice([-1, 1]) * rng.uniform(3, 6)
    return x


Family = Callable[[int, list[int], Generator], np.ndarray]
# family: (generator, choices of length, step between rows, share of rows dropped)
FAMILIES: dict[str, tuple[Family, tuple[int, ...], str, float]] = {
    "counts": (counts, (4_000, 16_000), "5min", 0.0),
    "taxi": (taxi, (10_000,), "5min", 0.0),
    "machine": (machine, (4_000, 16_000), "5min", 0.0),
    "cloud": (cloud, (4_000,), "5min", 0.0),
    "traffic": (traffic, (2_500,), "5min", 0.1),
    "price": (price, (1_600,), "1h", 0.03),
    "outliers": (outliers, (4_000,), "5min", 0.0),
}


def anomaly_starts(n: int, count: int, rng: Generator) -> list[int]:
    """Starts between 20 % and 90 % of the series, at least a window apart."""
    gap = int(0.1 * n / max(count, 1))
    candidates = np.arange(int(0.2 * n), int(0.9 * n), gap)
    return sorted(int(c) for c in rng.choice(candidates, count, replace=False))


def one_series(family: str, count: int, rng: Generator) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    make, lengths, freq, dropped = FAMILIES[family]
    n = int(rng.choice(lengths))
    starts = anomaly_starts(n, count, rng)
    values = make(n, starts, rng)
    stamps = pd.date_range("2014-02-14", periods=n, freq=freq)
    keep = rng.random(n) >= dropped
    keep[starts] = True  # an anomaly's first row stays
    width = int(0.1 * n / max(count, 1))
    windows = [(max(s - width // 2, 0), min(s + width // 2, n - 1)) for s in starts]
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
    return frame[keep], [(stamps[a], stamps[b]) for a, b in windows]


def write_set(output: Path, series: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    labels: dict[str, list[list[str]]] = {}
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    for family in FAMILIES:
        plan = [("synthE_" + family, int(rng.integers(1, 4))) for _ in range(series)]
        plan += [("synthENoAnomaly", 0)] * max(1, series // 3)
        for i, (category, count) in enumerate(plan):
            frame, windows = one_series(family, count, rng)
            key = f"{category}/{family}_{i}.csv"
            (output / category).mkdir(parents=True, exist_ok=True)
            frame.to_csv(output / key, index=False)
            labels[key] = [[a.strftime(fmt), b.strftime(fmt)] for a, b in windows]
    (output / "windows.json").write_text(json.dumps(labels, indent=1))
    return len(labels)
