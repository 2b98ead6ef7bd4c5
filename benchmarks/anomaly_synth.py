"""Synthetic NAB-layout series to choose the anomaly rules' parameters on, instead of on NAB's own files.

    python -m benchmarks.anomaly_synth --output var/anomaly-synth [--seed 0] [--series 6]
    python -m benchmarks.anomaly --data var/anomaly-synth --output var/anomaly-synth-results
    python -m benchmarks.nab_score --data var/anomaly-synth --results var/anomaly-synth-results

Four families of 4,000 five-minute points, `--series` each: a daily wave with noise, a bursty series (quiet
with frequent normal bursts), an autocorrelated random walk around a level, and white noise with a slow trend.
Each series but those of `synthNoAnomaly/` gets one or two anomalies drawn from spike, level shift, ramp,
and (for the daily wave) a day whose pattern breaks. Windows follow NAB's rule: 10 % of the series' length
split between its anomalies, centred on each anomaly's start.

`--set E` makes the shapes of NAB's held-out categories instead (benchmarks/anomaly_nablike.py): counts
(tweets, ad clicks), daily and weekly seasonality (taxi), slow drift then failure (machine temperature),
quantised values with long flat runs (cloud metrics), rush-hour traffic speed, heavy-tailed hourly prices
sampled irregularly, huge outliers in the probationary period; 1,600 to 16,000 points.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

POINTS = 4000
DAY = 288  # five-minute points a day


def base(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(POINTS)
    if kind == "daily":
        level, amplitude = rng.uniform(20, 80), rng.uniform(5, 20)
        return level + amplitude * np.sin(2 * np.pi * t / DAY) + rng.normal(0, amplitude * 0.1, POINTS)
    if kind == "bursty":
        quiet = rng.uniform(0.5, 2.0) + rng.exponential(0.3, POINTS)
        bursts = rng.random(POINTS) < 0.02
        return quiet + bursts * rng.uniform(5, 15, POINTS)
    if kind == "walk":
        x = np.zeros(POINTS)
        for i in range(1, POINTS):
            x[i] = 0.98 * x[i - 1] + rng.normal(0, 1)
        return 50 + x
    return 10 + 0.0005 * t + rng.normal(0, 1, POINTS)


def inject(x: np.ndarray, kind: str, at: int, rng: np.random.Generator) -> np.ndarray:
    y = x.copy()
    scale = np.quantile(x[:at], 0.95) - np.quantile(x[:at], 0.05)
    if kind == "spike":
        y[at : at + 3] += scale * rng.uniform(1.0, 2.0) * rng.choice([-1, 1])
    elif kind == "shift":
        y[at:] += scale * rng.uniform(0.5, 1.0) * rng.choice([-1, 1])
    elif kind == "ramp":
        length = int(rng.integers(DAY // 4, DAY))
        y[at : at + length] += np.linspace(0, scale, length)
        y[at + length :] += scale
    elif kind == "pattern":
        y[at : at + DAY // 2] = np.median(x[:at]) + rng.normal(0, scale * 0.02, len(y[at : at + DAY // 2]))
    return y


def make(category: str, kind: str, anomalies: list[str], rng: np.random.Generator) -> tuple[np.ndarray, list]:
    x = base(kind, rng)
    starts = sorted(rng.choice(np.arange(int(0.3 * POINTS), int(0.9 * POINTS), DAY), len(anomalies), False))
    width = int(0.1 * POINTS / max(len(anomalies), 1))
    windows = []
    for anomaly, start in zip(anomalies, starts, strict=True):
        x = inject(x, anomaly, int(start), rng)
        windows.append((max(int(start) - width // 2, 0), min(int(start) + width // 2, POINTS - 1)))
    return x, windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--series", type=int, default=6, help="series per family")
    parser.add_argument("--set", choices=("classic", "E"), default="classic", help="families (see above)")
    args = parser.parse_args(argv)
    if args.set == "E":
        from benchmarks.anomaly_nablike import write_set

        count = write_set(args.output, args.series, args.seed)
        print(f"wrote {count} series under {args.output}")
        return 0
    rng = np.random.default_rng(args.seed)
    stamps = pd.date_range("2020-01-01", periods=POINTS, freq="5min")
    labels: dict[str, list[list[str]]] = {}
    kinds = {"daily": ["spike", "shift", "pattern"], "bursty": ["shift", "ramp"], "walk": ["spike", "shift"]}
    kinds["trend"] = ["spike", "shift", "ramp"]
    for kind, choices in kinds.items():
        for i in range(args.series):
            for category, count in ((f"synth_{kind}", int(rng.integers(1, 3))), ("synthNoAnomaly", 0)):
                anomalies = list(rng.choice(choices, count))
                x, windows = make(category, kind, anomalies, rng)
                key = f"{category}/{kind}_{i}.csv"
                path = args.output / key
                path.parent.mkdir(parents=True, exist_ok=True)
                text = stamps.strftime("%Y-%m-%d %H:%M:%S")
                pd.DataFrame({"timestamp": text, "value": np.round(x, 4)}).to_csv(path, index=False)
                fmt = "%Y-%m-%d %H:%M:%S.%f"
                labels[key] = [[stamps[a].strftime(fmt), stamps[b].strftime(fmt)] for a, b in windows]
    (args.output / "windows.json").write_text(json.dumps(labels, indent=1))
    print(f"wrote {len(labels)} series under {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
