"""NAB's standard-profile score of a results directory, re-implemented from NAB's scorer (numenta/NAB, MIT:
nab/sweeper.py and nab/runner.py normalisation) to check benchmarks.anomaly's output without NAB installed.

    python -m benchmarks.nab_score --data ../shared/data/anomaly --results var/anomaly-results

Per file: the first 15 % of rows (at most 750) are probationary and not scored. A detection is a row whose
anomaly_score >= threshold. Inside a labelled window, only the best (earliest) detection counts, worth
A(y) = 2 * sigmoid(-5 y) - 1 scaled to 1 at the window's start (y = -1) and 0 at its end (y = 0); a window
without a detection costs fn_weight. A detection outside windows costs fp_weight * |A| (less right after a
window: y measured from the last window's end in window lengths; -1 when no window preceded it). One threshold
for the whole corpus, the best one (an exact sweep over every distinct score; NAB's own optimiser searches for
the same maximum). Normalised: 100 * (raw - null) / (perfect - null), where the null detector misses every
window (raw = -fn_weight * windows) and the perfect one catches each at its start (tp_weight * windows).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.anomaly import load_labels, window_rows

PROFILES = {
    "standard": {"tp": 1.0, "fn": 1.0, "fp": 0.11},
    "reward_low_FP_rate": {"tp": 1.0, "fn": 1.0, "fp": 0.22},
    "reward_low_FN_rate": {"tp": 1.0, "fn": 2.0, "fp": 0.11},
}


def scaled_sigmoid(position: float) -> float:
    return -1.0 if position > 3.0 else 2 / (1 + math.exp(5 * position)) - 1


@dataclass
class Points:
    scores: np.ndarray  # anomaly score per scorable row
    weight: np.ndarray  # the row's NAB value if detected (TP reward or FP cost), before cost weights
    window: np.ndarray  # global window id, or -1 outside windows


def file_points(scores: np.ndarray, windows: list[tuple[int, int]], first_window_id: int) -> Points:
    n = len(scores)
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    weight = np.empty(n)
    window = np.full(n, -1)
    max_tp = scaled_sigmoid(-1.0)
    previous_end = previous_width = None
    bounds = sorted(windows)
    current = 0
    for i in range(n):
        if current < len(bounds) and bounds[current][0] <= i <= bounds[current][1]:
            start, end = bounds[current]
            width = end - start + 1
            weight[i] = scaled_sigmoid(-(end - i + 1) / width) / max_tp
            window[i] = first_window_id + current
            if i == end:
                previous_end, previous_width, current = end, width, current + 1
        elif previous_end is None:
            weight[i] = -1.0
        else:
            weight[i] = scaled_sigmoid(abs(previous_end - i) / float(previous_width - 1))
    keep = np.arange(n) >= probation
    return Points(scores[keep], weight[keep], window[keep])


def best_score(points: list[Points], n_windows: int, profile: dict[str, float]) -> tuple[float, float]:
    """(normalised score, threshold) of the best single threshold over all files."""
    scores = np.concatenate([p.scores for p in points])
    weight = np.concatenate([p.weight for p in points])
    window = np.concatenate([p.window for p in points])
    # NAB counts only windows with at least one scorable (non-probationary) row.
    n_windows = len(np.unique(window[window >= 0]))
    window = np.unique(window, return_inverse=True)[1] - (1 if (window < 0).any() else 0)
    order = np.argsort(-scores, kind="stable")
    scores, weight, window = scores[order], weight[order], window[order]
    best_tp = np.full(n_windows, -np.inf)
    raw = -profile["fn"] * n_windows  # nothing detected
    fp_total = 0.0
    tp_total = -profile["fn"] * n_windows
    best = (raw, 1.1)
    i = 0
    while i < len(scores):
        j = i
        while j < len(scores) and scores[j] == scores[i]:
            w = window[j]
            if w < 0:
                fp_total += weight[j] * profile["fp"]
            elif weight[j] * profile["tp"] > best_tp[w]:
                old = best_tp[w] if best_tp[w] > -np.inf else -profile["fn"]
                best_tp[w] = weight[j] * profile["tp"]
                tp_total += best_tp[w] - old
            j += 1
        if tp_total + fp_total > best[0]:
            best = (tp_total + fp_total, float(scores[i]))
        i = j
    null, perfect = -profile["fn"] * n_windows, profile["tp"] * n_windows
    return 100 * (best[0] - null) / (perfect - null), best[1]


def score_directory(
    results_dir: Path, labels: dict[str, list[list[str]]], profile: str
) -> tuple[float, float]:
    points, n_windows = [], 0
    for key in sorted(labels):
        path = results_dir / key
        if not path.exists():
            raise SystemExit(f"missing results file {path}")
        frame = pd.read_csv(path, dtype={"timestamp": str})
        windows = window_rows(frame["timestamp"], labels[key])
        points.append(file_points(frame["anomaly_score"].to_numpy(float), windows, n_windows))
        n_windows += len(windows)
    return best_score(points, n_windows, PROFILES[profile])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="NAB-layout directory with windows.json")
    parser.add_argument("--results", type=Path, required=True, help="benchmarks.anomaly --output directory")
    args = parser.parse_args(argv)
    labels = load_labels(args.data)
    if not any(labels.values()):
        print(f"no labelled windows for {args.data} (windows.json or NAB's combined_windows.json): no score")
        return 0
    for profile in PROFILES:
        score, threshold = score_directory(args.results, labels, profile)
        print(f"{profile:20} score {score:6.1f}  (best threshold {threshold:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
