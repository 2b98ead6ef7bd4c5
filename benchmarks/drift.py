"""Benchmark of ml_api.drift.DriftDetector: false alarms, detection power/delay, and two public data sets.

    python -m benchmarks.drift [--data-dir ../shared/data] [--windows 1000] [--seed 0]

(a) stationary tickets from `ml_api.data.generate_tickets`: a 5000-row reference (one seed) against windows of
    100/250/500 rows, each window from its own seed -> false-alarm rates (goal <= 1 %) and ms per evaluate.
(b) a +0.5 reference-SD mean shift of one feature at a time -> detection rate (goal >= 95 % at 500 rows), the
    smallest fresh window reaching 95 %, and the requests needed in a sliding window (see DELAY below).
    How a feature is shifted:
    - continuous features (the detector's "ks" columns): add 0.5 SD, then round stochastically back onto the
      column's grid (integers for ticket_length, 0.1 for business_impact) so the mean moves by exactly 0.5 SD;
    - discrete features ("chi2" columns: tiers, counts): values are redrawn from the exponentially tilted pmf
      p_t(x) ~ p(x) e^(t x) of the generator (estimated on 200k rows), t solved so that the mean rises by
      0.5 SD. The support stays the generator's (no tier 6), unlike "add and round".
    DELAY: a 500-row sliding window starts full of stationary tickets; shifted tickets then arrive one by one,
    the detector runs every 10 arrivals (the service evaluates every few seconds); the figure is the number of
    shifted tickets that had arrived when the feature was first flagged (median and 90th percentile).
(c) NannyML car-loan data (../shared/data/drift/car_loan_4num.csv): fit on `reference` rows, slide a window
    (step 10 rows) over the `analysis` rows in `row` order; the change row is the first row with
    shifted_by_measurement = 1. Detection delay = shifted rows inside the window when first flagged.
    TCPD occupancy: informative only (autocorrelated sensor series, not i.i.d. traffic).
No threshold here is fitted to these data: the detector runs with its defaults (alpha = 1 %, Bonferroni).
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ml_api.data import FEATURES, generate_tickets
from ml_api.drift import DriftDetector

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
WINDOW_SIZES = (100, 250, 500)
SERVICE_WINDOW = 500
SHIFT_SD = 0.5
EVAL_EVERY = 10
DETECTOR_OPTIONS: dict[str, float] = {}  # --alpha; empty = the detector's defaults


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, r in enumerate(cells):
        print(
            "  "
            + "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths))


def pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f}%" if n else "n/a"


def upper95(k: int, n: int) -> str:
    """One-sided-ish Clopper-Pearson 95 % upper bound, to show how sure a 'rate <= goal' is."""
    return f"{100.0 * stats.binomtest(k, n).proportion_ci(0.95).high:.1f}%"


# ---------------------------------------------------------------- (a) stationary traffic
def bench_stationary(ref: pd.DataFrame, n_windows: int) -> None:
    det = DriftDetector(ref[list(FEATURES)], reference_predictions=list(ref["severity"]), **DETECTOR_OPTIONS)
    print(
        f"\n(a) stationary tickets: reference 5000 rows (seed 0), {n_windows} windows per size, one seed each"
    )
    print(f"    methods: {det.methods}; predictions = the generator's severity labels (class-mix drift test)")
    rows = []
    for size in WINDOW_SIZES:
        k_dataset = k_any = k_pred = 0
        per_feature = dict.fromkeys(FEATURES, 0)
        spent = cpu = 0.0
        for i in range(n_windows):
            w = generate_tickets(size, seed=1_000_000 + size * 10_000 + i)
            t0, c0 = time.perf_counter(), time.process_time()
            r = det.evaluate(w[list(FEATURES)], list(w["severity"]))
            spent += time.perf_counter() - t0
            cpu += time.process_time() - c0
            k_dataset += bool(r.dataset_drift)
            k_any += any(f.detected for f in r.features.values())
            k_pred += bool(r.prediction_drift_detected)
            for name, f in r.features.items():
                per_feature[name] += f.detected
        rows.append(
            [
                size,
                pct(k_dataset, n_windows),
                f"{pct(k_any, n_windows)} (<={upper95(k_any, n_windows)})",
                " ".join(str(per_feature[f]) for f in FEATURES),
                pct(k_pred, n_windows),
                f"{1000.0 * spent / n_windows:.2f} / {1000.0 * cpu / n_windows:.2f}",
                "ok" if k_any / n_windows <= 0.01 and k_dataset / n_windows <= 0.01 else "MISS",
            ]
        )
    table(
        [
            "window",
            "dataset_drift FA",
            "any-feature FA (95% CI high)",
            "FA count per feature",
            "prediction FA",
            "ms/evaluate wall/cpu",
            "goal<=1%",
        ],
        rows,
    )
    print(f"    feature order: {', '.join(FEATURES)}")
    # The service re-evaluates an overlapping window every few seconds: alarms over a long stationary stream
    # are many looks at the same data, so their count is a property of the scan, not of one evaluation.
    scans, stream, step = 10, 5000, 25
    hit_scans = episodes = longest = 0
    for s in range(scans):
        x = generate_tickets(stream, seed=3_000_000 + s)[list(FEATURES)]
        flags = [
            any(f.detected for f in det.evaluate(x.iloc[e - SERVICE_WINDOW : e]).features.values())
            for e in range(SERVICE_WINDOW, stream + 1, step)
        ]
        hit_scans += any(flags)
        run = 0
        for flag in flags:
            run = run + 1 if flag else 0
            episodes += run == 1
            longest = max(longest, run)
    print(
        f"    scan: a {SERVICE_WINDOW}-row window sliding over {scans} stationary streams of "
        f"{stream} tickets,\n    evaluated every {step}: {hit_scans}/{scans} streams with an alarm, "
        f"{episodes / scans:.2f} alarm episodes per stream, longest {longest} consecutive evaluations"
    )


# ---------------------------------------------------------------- (b) mean shift of one feature
def _decimals(values: np.ndarray) -> int | None:
    for k in range(7):
        scaled = values * 10**k
        if np.allclose(scaled, np.round(scaled)):
            return k
    return None


def make_shifter(
    det: DriftDetector, ref: pd.DataFrame, feature: str, population: pd.DataFrame
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """A function that turns stationary values of `feature` into values whose mean is 0.5 SD higher."""
    sd = float(ref[feature].std())
    delta = SHIFT_SD * sd
    if det.methods[feature] == "ks":
        decimals = _decimals(ref[feature].to_numpy(float))
        grid = None if decimals is None else 10.0**-decimals

        def shift_continuous(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            y = x + delta
            if grid is None:
                return y
            lower = np.floor(y / grid) * grid  # stochastic rounding keeps the mean shift exact
            return np.round(lower + grid * (rng.random(y.size) < (y - lower) / grid), decimals)

        return shift_continuous

    support, counts = np.unique(population[feature].to_numpy(float), return_counts=True)
    pmf = counts / counts.sum()
    target = float(np.dot(support, pmf)) + delta
    z = (support - support.mean()) / support.std()

    def tilted(t: float) -> np.ndarray:
        w = pmf * np.exp(t * z - np.max(t * z))
        return w / w.sum()

    lo, hi = 0.0, 50.0
    for _ in range(100):  # the tilted mean rises monotonically with t: bisection
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(np.dot(support, tilted(mid))) < target else (lo, mid)
    p_shift = tilted((lo + hi) / 2)

    def shift_discrete(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(support, size=x.size, p=p_shift)

    return shift_discrete


def bench_shift(ref: pd.DataFrame, n_windows: int, n_trials: int) -> None:
    feats = list(FEATURES)
    det = DriftDetector(ref[feats], **DETECTOR_OPTIONS)
    # same tests, allowed to judge smaller windows, for the smallest-window grid
    small = DriftDetector(ref[feats], min_window=25, **DETECTOR_OPTIONS)
    population = generate_tickets(200_000, seed=7)
    rng = np.random.default_rng(11)
    grid = (25, 50, 75, 100, 150, 200, 250, 300, 400, 500)
    print(
        f"\n(b) +{SHIFT_SD} SD mean shift of one feature: {n_windows} fresh windows/size, "
        f"{n_trials} sliding trials"
    )
    rows = []
    seed = 2_000_000
    for feature in feats:
        shifter = make_shifter(det, ref, feature, population)
        check = shifter(population[feature].to_numpy(float)[:100_000], rng)
        moved = (check.mean() - population[feature].mean()) / ref[feature].std()
        rates, others = [], []
        for size in WINDOW_SIZES:
            hit = other = 0
            for _ in range(n_windows):
                seed += 1
                w = generate_tickets(size, seed=seed)[feats]
                w[feature] = shifter(w[feature].to_numpy(float), rng)
                r = det.evaluate(w)
                hit += r.features[feature].detected
                other += any(f.detected for n, f in r.features.items() if n != feature)
            rates.append(hit / n_windows)
            others.append(other / n_windows)
        smallest = None
        for size in grid:  # smallest fresh, fully shifted window flagged in >= 95 % of cases
            hit = 0
            n_grid = max(100, n_windows // 2)
            for _ in range(n_grid):
                seed += 1
                w = generate_tickets(size, seed=seed)[feats]
                w[feature] = shifter(w[feature].to_numpy(float), rng)
                hit += small.evaluate(w).features[feature].detected
            if hit / n_grid >= 0.95:
                smallest = size
                break
        delays = []
        for _ in range(n_trials):
            seed += 1
            base = generate_tickets(SERVICE_WINDOW, seed=seed)[feats]
            seed += 1
            new = generate_tickets(2 * SERVICE_WINDOW, seed=seed)[feats]
            new[feature] = shifter(new[feature].to_numpy(float), rng)
            stream = pd.concat([base, new], ignore_index=True)
            found = None
            for k in range(EVAL_EVERY, 2 * SERVICE_WINDOW + 1, EVAL_EVERY):
                if det.evaluate(stream.iloc[k : k + SERVICE_WINDOW]).features[feature].detected:
                    found = k
                    break
            delays.append(np.inf if found is None else found)
        d = np.array(delays)
        rows.append(
            [
                feature,
                det.methods[feature],
                f"{moved:+.3f}",
                *[f"{100 * x:.1f}%" for x in rates],
                f"{100 * max(others):.1f}%",
                smallest if smallest is not None else ">500",
                f"{np.median(d):.0f} / {np.percentile(d, 90):.0f}",
                "ok" if rates[-1] >= 0.95 else "MISS",
            ]
        )
    table(
        [
            "feature",
            "test",
            "mean moved (SD)",
            *[f"detect@{s}" for s in WINDOW_SIZES],
            "other feat. FA",
            "min window 95%",
            "requests med/p90",
            "goal>=95%@500",
        ],
        rows,
    )
    print(
        f"    requests = shifted tickets arrived into a {SERVICE_WINDOW}-row sliding window (evaluated every "
        f"{EVAL_EVERY}) when first flagged"
    )


# ---------------------------------------------------------------- (c) public data
def first_change_row(df: pd.DataFrame) -> int:
    shifted = df.loc[df["shifted_by_measurement"] == 1, "row"]
    return int(shifted.min()) if len(shifted) else 25000


def bench_car_loan(path: Path) -> None:
    df = pd.read_csv(path)
    features = ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure"]
    ref = df[df["period"] == "reference"][features]
    ana = df[df["period"] == "analysis"].sort_values("row").reset_index(drop=True)
    change = first_change_row(ana)
    rows_idx = ana["row"].to_numpy()
    print(f"\n(c) car loan: reference {len(ref)} rows, analysis {len(ana)} rows, change at row {change}")
    expect = {"car_value": True, "debt_to_income_ratio": False, "loan_length": True, "driver_tenure": False}
    out = []
    for size in WINDOW_SIZES:
        det = DriftDetector(ref, min_window=size, **DETECTOR_OPTIONS)
        pre = post = 0
        pre_hits = dict.fromkeys(features, 0)
        post_hits = dict.fromkeys(features, 0)
        first: dict[str, int | None] = dict.fromkeys(features, None)
        flags: dict[str, list[bool]] = {f: [] for f in features}
        ds_first = None
        ds_pre = 0
        for end in range(size, len(ana) + 1, EVAL_EVERY):
            r = det.evaluate(ana.iloc[end - size : end][features])
            last = int(rows_idx[end - 1])
            for f in features:
                flags[f].append(r.features[f].detected)
            if last < change:
                pre += 1
                ds_pre += bool(r.dataset_drift)
                for f in features:
                    pre_hits[f] += r.features[f].detected
            else:
                post += 1
                if r.dataset_drift and ds_first is None:
                    ds_first = last - change + 1
                for f in features:
                    post_hits[f] += r.features[f].detected
                    if r.features[f].detected and first[f] is None:
                        first[f] = last - change + 1
        for f in features:
            ok = (first[f] is not None) if expect[f] else (post_hits[f] == 0)
            episodes = sum(1 for i, x in enumerate(flags[f]) if x and (i == 0 or not flags[f][i - 1]))
            if ok and pre_hits[f] == 0:
                verdict = "ok"
            elif ok:
                verdict = "ok, FA before"
            elif expect[f]:
                verdict = "MISS: not detected"
            else:
                verdict = "false alarm"
            out.append(
                [
                    size,
                    f,
                    det.methods[f],
                    "drifts" if expect[f] else "stable",
                    f"{pre_hits[f]}/{pre}",
                    f"{post_hits[f]}/{post}",
                    episodes,
                    first[f] if first[f] is not None else "never",
                    verdict,
                ]
            )
        ds = f"dataset_drift: first at +{ds_first} rows" if ds_first is not None else "dataset_drift: never"
        print(f"    window {size}: {ds} after the change, {ds_pre}/{pre} windows before it")
    table(
        [
            "window",
            "feature",
            "test",
            "truth",
            "flagged before",
            "flagged after",
            "episodes",
            "delay (rows)",
            "verdict",
        ],
        out,
    )
    print(
        "    flagged = evaluations flagged / evaluations (windows slide by 10 rows); episodes = runs of\n"
        "    consecutive flagged evaluations; delay = shifted rows inside the window when first flagged"
    )


def _onsets(flags: list[bool], ends: list[int]) -> list[int]:
    return [ends[i] for i in range(len(flags)) if flags[i] and (i == 0 or not flags[i - 1])]


def bench_occupancy(series_path: Path, annotations_path: Path, ref_rows: int = 50, size: int = 50) -> None:
    df = pd.read_csv(series_path)
    features = [c for c in df.columns if c.startswith("V")]
    notes = json.loads(annotations_path.read_text())
    points = sorted({int(p) for marks in notes.values() for p in marks})
    clusters: list[int] = []
    for p in points:  # annotators disagree by a few rows: one change per cluster within 5 rows
        if not clusters or p - clusters[-1] > 5:
            clusters.append(p)
    print(f"\n(c') TCPD occupancy: {len(df)} rows x {len(features)} features (informative, no goal)")
    print(f"    annotated change points (5 annotators, merged within 5 rows): {clusters}")
    x = df[features]
    fixed = DriftDetector(x.iloc[:ref_rows], min_window=size, **DETECTOR_OPTIONS)
    print(f"    methods (fixed reference): {fixed.methods}")
    ends: list[int] = []
    runs: dict[str, list] = {"fixed": [], "rolling": []}
    for end in range(ref_rows + size, len(df) + 1):
        ends.append(end - 1)
        window = x.iloc[end - size : end]
        runs["fixed"].append(fixed.evaluate(window))
        rolling = DriftDetector(x.iloc[end - 2 * size : end - size], min_window=size, **DETECTOR_OPTIONS)
        runs["rolling"].append(rolling.evaluate(window))
    horizon = size
    labels = {
        "fixed": f"fixed reference = rows 0-{ref_rows - 1}",
        "rolling": f"rolling reference = the {size} rows before the window",
    }
    for key, results in runs.items():
        per_feature = " ".join(f"{f}={sum(r.features[f].detected for r in results)}" for f in features)
        flags = [bool(r.dataset_drift) for r in results]
        on = _onsets(flags, ends)
        judged = [c for c in clusters if c >= ends[0] - size]
        caught = [c for c in judged if any(0 <= o - c <= horizon for o in on)]
        near = [o for o in on if any(0 <= o - c <= horizon for c in clusters)]
        print(
            f"    {labels[key]}, window {size}, {len(results)} windows:\n"
            f"      flagged per feature: {per_feature}; dataset_drift in {sum(flags)}, onsets at rows {on}\n"
            f"      change points followed by an onset within {horizon} rows: {len(caught)}/{len(judged)}; "
            f"onsets within {horizon} rows after a change point: {len(near)}/{len(on)}"
        )
    print(
        "      (the series is autocorrelated and trending: i.i.d. two-sample tests flag most windows of it;\n"
        "      a drift detector is not a change-point detector)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the shared benchmark data")
    parser.add_argument("--windows", type=int, default=1000, help="stationary windows per size in (a)")
    parser.add_argument("--shift-windows", type=int, default=200, help="shifted windows per size in (b)")
    parser.add_argument("--trials", type=int, default=50, help="sliding-window trials per feature in (b)")
    parser.add_argument(
        "--alpha", type=float, help="family-wise level per evaluation (default: the detector's)"
    )
    args = parser.parse_args(argv)
    if args.alpha is not None:
        DETECTOR_OPTIONS["alpha"] = args.alpha
    alpha = DETECTOR_OPTIONS.get("alpha", inspect.signature(DriftDetector).parameters["alpha"].default)
    print(f"DriftDetector alpha = {alpha} (family-wise false-alarm level of one evaluation)")
    started = time.perf_counter()
    ref = generate_tickets(5000, seed=0)
    bench_stationary(ref, args.windows)
    print(f"    [{time.perf_counter() - started:.0f} s]")
    bench_shift(ref, args.shift_windows, args.trials)
    print(f"    [{time.perf_counter() - started:.0f} s]")
    drift_dir = args.data_dir / "drift"
    car = drift_dir / "car_loan_4num.csv"
    if car.exists():
        bench_car_loan(car)
    else:
        print(f"\n(c) skipped: {car} not found (pass --data-dir)")
    occ, occ_notes = drift_dir / "tcpd_occupancy_4num.csv", drift_dir / "tcpd_occupancy_annotations.json"
    if occ.exists() and occ_notes.exists():
        bench_occupancy(occ, occ_notes)
    else:
        print(f"\n(c') skipped: {occ} not found")
    print(f"\ntotal {time.perf_counter() - started:.1f} s wall, {time.process_time():.1f} s cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
