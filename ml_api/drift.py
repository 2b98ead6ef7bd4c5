"""Feature and prediction drift: a recent window of traffic against the training reference.

Why not histograms: the lab this replaces binned the reference and the window on *different* edges, so its
score moved with sampling noise (false alarms on most stationary windows) and a shift out of range scored 0.
Here every comparison is made on one shared axis (the reference ECDF, or bins fixed by the reference) and
the decision is a significance test whose false-alarm rate is known.

Per feature (`FeatureDrift`):
- `score`: the Kolmogorov-Smirnov distance D = sup_x |F_ref(x) - F_window(x)| in [0, 1], computed exactly on
  the pooled support (ties included). Same scale for every feature, so one dashboard threshold reads the same
  everywhere: ~0.03-0.08 is sampling noise for a 500-row window, 0.2 is a 0.5-SD mean shift of a normal
  feature, 1 means the two samples do not overlap.
- `detected`: a two-sample test at level `alpha / n_features` (Bonferroni), so the chance that *any* feature
  alarms on a window with no drift is at most `alpha`. Default 0.5 %: a level-alpha test alarms at rate
  ~alpha by construction, so alpha = 1 % would sit exactly on the "<= 1 % false alarms" goal and cross it
  half the time by sampling noise (the reference is itself a sample); 0.5 % keeps a margin and still flags a
  0.5-SD shift in >= 99 % of 250-row windows (python -m benchmarks.drift). Windows overlap from one
  evaluation to the next, so a stationary stream still shows a short alarm now and then (about one episode
  per 10 000 tickets, measured): alert rules should ask the flag to persist (`for:`).
  - continuous columns (more than `max_categories` distinct reference values): two-sample KS test on D
    (`method="ks"`); its asymptotic p-value accounts for the size of both samples.
  - discrete columns (counts, tiers, ...: at most `max_categories` distinct values): KS is conservative with
    ties (its null distribution assumes continuity), so a discrete shift would need a far larger window to be
    seen. They get a chi-square test of homogeneity instead (`method="chi2"`), over the reference's own values
    taken in order, adjacent values merged until each bin expects >= 5 window rows (the chi-square
    approximation's rule). Bins are fixed by the reference: edges sit midway between reference values and
    the end bins are open, so values never seen in the reference land in the nearest bin instead of a bin with
    zero reference mass (which would make one rare value look like drift). Near the decision level the
    chi-square p-value is replaced by an exact (Monte Carlo permutation) one.
  - a constant reference column: Fisher's exact test of "same value as the reference" vs "another value".
- `dataset_drift`: share of drifted features >= `drift_share` (default 0.5, Evidently's default rule).
- prediction drift: chi-square homogeneity test of the predicted-class counts against the reference
  predictions at level `alpha`; the score is the Jensen-Shannon distance (base 2, in [0, 1]) of the class
  frequencies.

Below `min_window` rows nothing is judged: `DriftResult(sufficient=False)` carries no number at all.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

# Chi-square approximation rule of thumb: every bin should expect at least this many window rows.
MIN_EXPECTED = 5.0
# Chi-square p-values within this factor of the decision level are redone by a permutation test (see below).
MC_BAND = 5.0
MC_SEED = 20240601


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    score: float  # KS distance D in [0, 1]
    detected: bool
    method: str  # test behind `detected`: "ks", "chi2" or "fisher"
    p_value: float | None = None


@dataclass(frozen=True)
class DriftResult:
    sufficient: bool
    window_size: int
    features: dict[str, FeatureDrift] = field(default_factory=dict)  # empty when not sufficient
    drifted_share: float | None = None
    dataset_drift: bool | None = None
    prediction_drift_score: float | None = None  # Jensen-Shannon distance in [0, 1]
    prediction_drift_detected: bool | None = None


def _finite(values: object) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):  # mixed/object column: unparseable entries become NaN and are dropped
        arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return arr[np.isfinite(arr)]


def _ks_distance(ref_sorted: np.ndarray, ref_support: np.ndarray, win: np.ndarray) -> float:
    """sup |F_ref - F_win|; both step functions only jump at sample points, so checking those is exact."""
    win_sorted = np.sort(win)
    points = np.concatenate([ref_support, win_sorted])
    f_ref = np.searchsorted(ref_sorted, points, side="right") / ref_sorted.size
    f_win = np.searchsorted(win_sorted, points, side="right") / win_sorted.size
    return float(np.max(np.abs(f_ref - f_win)))


def _chi2_homogeneity(ref_counts: np.ndarray, win_counts: np.ndarray, level: float) -> float:
    """p-value of the 2 x k chi-square test that both count vectors come from one distribution.

    The chi-square approximation runs a little hot in the far tail where decisions are made (measured: 0.35 %
    alarms at a 0.25 % level with 100-row windows), so near the decision level the p-value is recomputed by
    a Monte Carlo permutation test: given the pooled count of each bin (fixed under the null), the window's
    counts are multivariate hypergeometric, which numpy samples directly; the statistic's null tail is then
    exact up to Monte Carlo error. Seeded, so the same data always give the same answer.
    """
    table = np.vstack([ref_counts, win_counts]).astype(np.int64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    col = table.sum(axis=0)
    n_ref, n_win = int(table[0].sum()), int(table[1].sum())
    total = n_ref + n_win
    exp_ref, exp_win = n_ref * col / total, n_win * col / total

    def statistic(win: np.ndarray) -> np.ndarray:
        return np.sum((win - exp_win) ** 2 / exp_win + (col - win - exp_ref) ** 2 / exp_ref, axis=-1)

    observed = float(statistic(table[1].astype(float)))
    p = float(stats.chi2.sf(observed, table.shape[1] - 1))
    if level / MC_BAND <= p < level * MC_BAND:
        draws = min(50_000, max(2000, math.ceil(10.0 / level)))  # ~10 exceedances expected at p = level
        rng = np.random.default_rng(MC_SEED)
        sims = rng.multivariate_hypergeometric(col, n_win, size=draws, method="marginals").astype(float)
        p = (1.0 + float(np.count_nonzero(statistic(sims) >= observed - 1e-9))) / (draws + 1.0)
    return p


def _merge_groups(counts: np.ndarray, min_count: float) -> list[int]:
    """Start index of each group of adjacent categories, so that every group holds >= min_count."""
    starts: list[int] = []
    acc = min_count  # forces a new group at index 0
    for i, c in enumerate(counts):
        if acc >= min_count:
            starts.append(i)
            acc = 0.0
        acc += float(c)
    if len(starts) > 1 and acc < min_count:
        starts.pop()  # the tail is too small: fold it into the previous group
    return starts


class _Column:
    """One reference column, pre-sorted so each evaluation costs a couple of searchsorted calls."""

    def __init__(self, name: str, values: np.ndarray, max_categories: int) -> None:
        if values.size < 2:
            raise ValueError(f"reference column {name!r} needs at least 2 finite values")
        self.name = name
        self.sorted = np.sort(values)
        self.support, self.counts = np.unique(self.sorted, return_counts=True)
        if self.support.size == 1:
            self.method = "fisher"
        elif self.support.size <= max_categories:
            self.method = "chi2"
        else:
            self.method = "ks"
        self._bins: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _discrete_bins(self, n_window: int) -> tuple[np.ndarray, np.ndarray]:
        """(edges, reference counts per bin) for a window of n_window rows; cached per window size."""
        cached = self._bins.get(n_window)
        if cached is not None:
            return cached
        # a bin expecting >= MIN_EXPECTED window rows needs reference share >= MIN_EXPECTED / n_window
        min_ref = MIN_EXPECTED / n_window * self.sorted.size
        starts = _merge_groups(self.counts, min_ref)
        edges = (self.support[np.array(starts[1:], dtype=int) - 1] + self.support[starts[1:]]) / 2.0
        ref_counts = np.add.reduceat(self.counts, starts)
        if len(self._bins) > 64:  # window sizes vary while a window fills; keep the cache bounded
            self._bins.clear()
        self._bins[n_window] = (edges, ref_counts)
        return edges, ref_counts

    def test(self, win: np.ndarray, level: float) -> FeatureDrift:
        score = _ks_distance(self.sorted, self.support, win)
        m, n = self.sorted.size, win.size
        if self.method == "ks":
            # the asymptotic p-value of scipy.stats.ks_2samp(method="asymp"), without re-sorting the reference
            p = float(stats.kstwo.sf(score, round(m * n / (m + n))))
        elif self.method == "chi2":
            edges, ref_counts = self._discrete_bins(n)
            win_counts = np.bincount(np.searchsorted(edges, win, side="right"), minlength=ref_counts.size)
            p = _chi2_homogeneity(ref_counts, win_counts, level)
        else:
            other = int(np.count_nonzero(win != self.support[0]))
            p = float(stats.fisher_exact([[m, 0], [n - other, other]], alternative="two-sided").pvalue)
        p = min(max(p, 0.0), 1.0)
        return FeatureDrift(self.name, score, p < level, self.method, p)


class DriftDetector:
    """Compares windows of traffic with a fixed reference sample; cheap enough to run every few seconds."""

    def __init__(
        self,
        reference: pd.DataFrame,
        *,
        reference_predictions: Sequence[str] | None = None,
        min_window: int = 100,
        alpha: float = 0.005,
        drift_share: float = 0.5,
        max_categories: int = 25,
        columns: Sequence[str] | None = None,
    ) -> None:
        """
        reference: training-like rows; every numeric column is monitored unless `columns` names them.
        alpha: family-wise false-alarm rate of one evaluation (split over features by Bonferroni).
        drift_share: dataset drift when at least this share of features drifted.
        max_categories: columns with at most this many distinct reference values are treated as discrete.
        """
        if min_window < 2:
            raise ValueError("min_window must be >= 2")
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if not 0.0 < drift_share <= 1.0:
            raise ValueError("drift_share must be in (0, 1]")
        if columns is None:
            columns = [c for c in reference.columns if pd.api.types.is_numeric_dtype(reference[c])]
        else:
            missing = [c for c in columns if c not in reference.columns]
            if missing:
                raise ValueError(f"reference has no column(s) {missing}")
            non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(reference[c])]
            if non_numeric:
                raise ValueError(f"column(s) {non_numeric} are not numeric")
        if not columns:
            raise ValueError("reference has no numeric column to monitor")
        self.columns: list[str] = [str(c) for c in columns]
        self.min_window = min_window
        self.alpha = alpha
        self.drift_share = drift_share
        self._cols = [_Column(str(c), _finite(reference[c]), max_categories) for c in columns]
        self._level = alpha / len(self._cols)
        self._ref_classes: dict[str, int] | None = None
        if reference_predictions is not None:
            classes, counts = np.unique(
                np.asarray([str(p) for p in reference_predictions]), return_counts=True
            )
            if classes.size == 0:
                raise ValueError("reference_predictions is empty")
            self._ref_classes = dict(zip(classes.tolist(), counts.tolist(), strict=True))

    @property
    def methods(self) -> dict[str, str]:
        return {c.name: c.method for c in self._cols}

    def evaluate(self, window: pd.DataFrame, predictions: Sequence[str] | None = None) -> DriftResult:
        missing = [c for c in self.columns if c not in window.columns]
        if missing:
            raise ValueError(f"window has no column(s) {missing}")
        values = {c.name: _finite(window[c.name].to_numpy()) for c in self._cols}
        n_rows = len(window)
        if n_rows < self.min_window or any(v.size < self.min_window for v in values.values()):
            return DriftResult(sufficient=False, window_size=n_rows)
        features = {c.name: c.test(values[c.name], self._level) for c in self._cols}
        share = sum(f.detected for f in features.values()) / len(features)
        pred_score, pred_detected = self._prediction_drift(predictions)
        return DriftResult(
            sufficient=True,
            window_size=n_rows,
            features=features,
            drifted_share=share,
            dataset_drift=share >= self.drift_share,
            prediction_drift_score=pred_score,
            prediction_drift_detected=pred_detected,
        )

    def _prediction_drift(self, predictions: Sequence[str] | None) -> tuple[float | None, bool | None]:
        if self._ref_classes is None or predictions is None or len(predictions) < self.min_window:
            return None, None
        labels, counts = np.unique(np.asarray([str(p) for p in predictions]), return_counts=True)
        win = dict(zip(labels.tolist(), counts.tolist(), strict=True))
        classes = sorted(set(self._ref_classes) | set(win))
        ref = np.array([self._ref_classes.get(c, 0) for c in classes], dtype=float)
        cur = np.array([win.get(c, 0) for c in classes], dtype=float)
        score = float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
        # Test: classes the reference makes rarely (or never) are pooled into one bin, which is folded into
        # the smallest class if it has no reference mass, so one odd prediction cannot look like drift.
        min_ref = MIN_EXPECTED / cur.sum() * ref.sum()
        big = ref >= min_ref
        ref_b, cur_b = list(ref[big]), list(cur[big])
        rest_ref, rest_cur = float(ref[~big].sum()), float(cur[~big].sum())
        if rest_ref > 0 or not ref_b:
            ref_b.append(rest_ref)
            cur_b.append(rest_cur)
        else:
            i = int(np.argmin(ref_b))
            cur_b[i] += rest_cur
        p = _chi2_homogeneity(np.array(ref_b), np.array(cur_b), self.alpha)
        return score, bool(p < self.alpha)


_Row = tuple[float, tuple[float, ...], str | None]  # (monotonic time, values in column order, prediction)


class DriftWindow:
    """Recent requests for drift checks: bounded by count (deque maxlen) and by age; thread-safe."""

    def __init__(self, columns: Sequence[str], max_size: int, max_age_seconds: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be > 0")
        self.columns = list(columns)
        self.max_size = max_size
        self.max_age_seconds = max_age_seconds
        self._rows: deque[_Row] = deque(maxlen=max_size)
        self._lock = threading.Lock()
        # Bumped whenever rows enter or leave: equal versions mean equal contents (reports are cached by it).
        self._version = 0
        # The row's values in column order, in C (snapshot makes them floats); itemgetter of one key
        # returns the value itself, not a 1-tuple.
        getter = itemgetter(*self.columns)
        self._values = getter if len(self.columns) > 1 else lambda row: (getter(row),)

    def _expire(self, now: float) -> None:
        cutoff = now - self.max_age_seconds
        rows = self._rows
        while rows and rows[0][0] < cutoff:
            rows.popleft()
            self._version += 1

    def add(self, row: Mapping[str, float], prediction: str | None = None, now: float | None = None) -> None:
        """O(1) amortised: called on the request path."""
        ts = time.monotonic() if now is None else now
        values = self._values(row)
        with self._lock:
            rows = self._rows
            if rows and rows[0][0] < ts - self.max_age_seconds:
                self._expire(ts)
            rows.append((ts, values, prediction))
            self._version += 1

    def _rows_and_version(self, now: float | None) -> tuple[list[_Row], int]:
        ts = time.monotonic() if now is None else now
        with self._lock:
            self._expire(ts)
            return list(self._rows), self._version

    def snapshot(self, now: float | None = None) -> tuple[pd.DataFrame, list[str]]:
        """(rows, predictions of the rows that carried one); expired rows are dropped first."""
        rows, _ = self._rows_and_version(now)
        frame = pd.DataFrame([r[1] for r in rows], columns=self.columns, dtype=float)
        predictions = [r[2] for r in rows if r[2] is not None]
        return frame, predictions

    def versioned_snapshot(self, now: float | None = None) -> tuple[pd.DataFrame, int]:
        """(rows, the window's version when they were taken): equal versions, equal rows."""
        rows, version = self._rows_and_version(now)
        return pd.DataFrame([r[1] for r in rows], columns=self.columns, dtype=float), version

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._version += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


def html_report(reference: pd.DataFrame, window: pd.DataFrame) -> str:
    """Evidently's data-drift report (standalone HTML) for humans; the gauges come from DriftDetector."""
    # Imported here: importing evidently costs seconds, and the service only needs it when someone asks.
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [
        c for c in reference.columns if c in window.columns and pd.api.types.is_numeric_dtype(reference[c])
    ]
    if not columns:
        raise ValueError("reference and window share no numeric column")
    if window.empty:
        raise ValueError("window is empty")
    snapshot = Report([DataDriftPreset(columns=columns)]).run(window[columns], reference[columns])
    return snapshot.get_html_str(as_iframe=False)
