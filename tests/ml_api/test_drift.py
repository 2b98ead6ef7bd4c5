"""DriftDetector / DriftWindow / html_report: real statistics on generated data, no mocks."""

import threading

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml_api.drift import DriftDetector, DriftResult, DriftWindow, _chi2_homogeneity, html_report

TIER_P = np.array([0.35, 0.25, 0.2, 0.12, 0.08])


def _frame(
    rng: np.random.Generator, n: int, shift_sd: float = 0.0, tier_p: np.ndarray = TIER_P
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "latency": rng.normal(10.0 + 2.0 * shift_sd, 2.0, n),
            "tier": rng.choice(np.arange(1, 6), size=n, p=tier_p),
            "count": rng.poisson(4.0, n),
            "ratio": rng.beta(2.0, 5.0, n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(np.random.default_rng(1), 5000)


@pytest.fixture(scope="module")
def detector(reference: pd.DataFrame) -> DriftDetector:
    return DriftDetector(reference)


def test_methods_follow_column_kind(detector: DriftDetector) -> None:
    assert detector.methods == {"latency": "ks", "tier": "chi2", "count": "chi2", "ratio": "ks"}


def test_identical_distribution_low_score_not_detected(detector: DriftDetector) -> None:
    result = detector.evaluate(_frame(np.random.default_rng(2), 500))
    assert result.sufficient and result.window_size == 500
    assert set(result.features) == {"latency", "tier", "count", "ratio"}
    for f in result.features.values():
        assert 0.0 <= f.score < 0.1, f
        assert not f.detected, f
    assert result.drifted_share == 0.0
    assert result.dataset_drift is False


def test_false_alarms_are_rare_on_stationary_windows(detector: DriftDetector) -> None:
    # alpha = 1% family-wise: ~1 alarm in 100 windows expected; 6 or more would mean a miscalibrated test
    rng = np.random.default_rng(3)
    alarms = sum(
        any(f.detected for f in detector.evaluate(_frame(rng, 250)).features.values()) for _ in range(100)
    )
    assert alarms <= 5


def test_score_and_p_value_match_scipy_ks(reference: pd.DataFrame, detector: DriftDetector) -> None:
    window = _frame(np.random.default_rng(4), 400, shift_sd=0.2)
    f = detector.evaluate(window).features["latency"]
    expected = stats.ks_2samp(reference["latency"], window["latency"], method="asymp")
    assert f.score == pytest.approx(expected.statistic)
    assert f.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_one_sd_shift_detected_with_high_score(detector: DriftDetector) -> None:
    result = detector.evaluate(_frame(np.random.default_rng(5), 500, shift_sd=1.0))
    latency = result.features["latency"]
    assert latency.detected and latency.method == "ks"
    assert latency.score > 0.3
    assert not result.features["ratio"].detected
    assert result.drifted_share == pytest.approx(0.25)
    assert result.dataset_drift is False  # one feature of four < drift_share 0.5


def test_discrete_shift_detected(detector: DriftDetector) -> None:
    shifted_tiers = np.array([0.15, 0.2, 0.25, 0.2, 0.2])  # mean tier 2.23 -> 3.1
    result = detector.evaluate(_frame(np.random.default_rng(6), 500, tier_p=shifted_tiers))
    tier = result.features["tier"]
    assert tier.detected and tier.method == "chi2"
    assert tier.score > 0.15
    assert not result.features["latency"].detected


def test_chi2_exact_refinement_near_the_level_is_deterministic() -> None:
    ref_counts = np.array([2000, 1350, 850, 500, 300])
    win_counts = np.array([30, 27, 17, 14, 12])  # a borderline window of 100
    asymptotic = stats.chi2_contingency(np.vstack([ref_counts, win_counts]), correction=False).pvalue
    level = asymptotic * 2  # puts the asymptotic p-value inside the band that is recomputed exactly
    p1 = _chi2_homogeneity(ref_counts, win_counts, level)
    assert p1 == _chi2_homogeneity(ref_counts, win_counts, level)
    assert p1 != asymptotic and 0.5 * asymptotic < p1 < 2.0 * asymptotic
    # far from the level the asymptotic value is kept
    assert _chi2_homogeneity(ref_counts, win_counts, 0.5) == pytest.approx(asymptotic)


def test_count_shift_by_one_detected(detector: DriftDetector) -> None:
    window = _frame(np.random.default_rng(7), 500)
    window["count"] = window["count"] + 1
    assert detector.evaluate(window).features["count"].detected


def test_shift_out_of_range_scores_one(detector: DriftDetector) -> None:
    # the replaced lab scored a 100-sigma shift as 0: here it is the maximum distance
    window = _frame(np.random.default_rng(8), 200)
    window["latency"] += 200.0
    f = detector.evaluate(window).features["latency"]
    assert f.score == pytest.approx(1.0) and f.detected


def test_one_unseen_discrete_value_is_not_drift(detector: DriftDetector) -> None:
    window = _frame(np.random.default_rng(9), 500)
    window.loc[0, "tier"] = 6  # a value the reference never had, once
    assert not detector.evaluate(window).features["tier"].detected


def test_two_of_four_shifted_is_dataset_drift(detector: DriftDetector) -> None:
    window = _frame(np.random.default_rng(10), 500, shift_sd=1.0)
    window["ratio"] = window["ratio"] + 0.2
    result = detector.evaluate(window)
    assert result.drifted_share == pytest.approx(0.5)
    assert result.dataset_drift is True


def test_arbitrary_numeric_columns() -> None:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"temp °C": rng.normal(20, 3, 3000), "rpm": rng.gamma(3, 100, 3000), "label": "x"})
    det = DriftDetector(ref, min_window=50)
    assert det.columns == ["temp °C", "rpm"]  # the text column is not monitored
    cur = pd.DataFrame({"temp °C": rng.normal(23, 3, 80), "rpm": rng.gamma(3, 100, 80)})
    result = det.evaluate(cur)
    assert set(result.features) == {"temp °C", "rpm"}
    assert result.features["temp °C"].detected and not result.features["rpm"].detected
    with pytest.raises(ValueError, match="rpm"):
        det.evaluate(cur[["temp °C"]])
    with pytest.raises(ValueError, match="not numeric"):
        DriftDetector(ref, columns=["rpm", "label"])


def test_constant_reference_column() -> None:
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"flag": np.zeros(2000), "x": rng.normal(size=2000)})
    det = DriftDetector(ref)
    cur = pd.DataFrame({"flag": np.zeros(300), "x": rng.normal(size=300)})
    f = det.evaluate(cur).features["flag"]
    assert f.method == "fisher" and not f.detected and f.score == 0.0
    cur.loc[:60, "flag"] = 1.0
    f = det.evaluate(cur).features["flag"]
    assert f.detected and f.score == pytest.approx(61 / 300)


def test_insufficient_window_has_no_numbers(reference: pd.DataFrame) -> None:
    det = DriftDetector(reference, reference_predictions=["low"] * 50 + ["high"] * 50, min_window=100)
    window = _frame(np.random.default_rng(13), 99, shift_sd=5.0)
    result = det.evaluate(window, predictions=["high"] * 99)
    assert result == DriftResult(sufficient=False, window_size=99)
    assert result.features == {} and result.drifted_share is None and result.dataset_drift is None
    assert result.prediction_drift_score is None and result.prediction_drift_detected is None
    assert det.evaluate(_frame(np.random.default_rng(13), 100)).sufficient


def test_prediction_drift_on_changed_class_mix(reference: pd.DataFrame) -> None:
    rng = np.random.default_rng(14)
    classes = ["low", "medium", "high", "critical"]
    ref_mix = [0.4, 0.3, 0.2, 0.1]
    det = DriftDetector(reference, reference_predictions=list(rng.choice(classes, 5000, p=ref_mix)))
    window = _frame(rng, 500)
    same = det.evaluate(window, predictions=list(rng.choice(classes, 500, p=ref_mix)))
    changed = det.evaluate(window, predictions=list(rng.choice(classes, 500, p=[0.2, 0.3, 0.2, 0.3])))
    assert same.prediction_drift_detected is False
    assert changed.prediction_drift_detected is True
    assert same.prediction_drift_score is not None and changed.prediction_drift_score is not None
    assert 0.0 <= same.prediction_drift_score < 0.1 < changed.prediction_drift_score <= 1.0
    # no predictions given: prediction drift is unknown, features are still judged
    no_pred = det.evaluate(window)
    assert no_pred.sufficient and no_pred.prediction_drift_score is None


def test_window_bounded_by_size_and_age() -> None:
    win = DriftWindow(["a", "b"], max_size=5, max_age_seconds=10.0)
    for i in range(8):
        win.add({"a": i, "b": -i}, prediction="p" if i % 2 else None, now=100.0 + i)
    assert len(win) == 5
    frame, preds = win.snapshot(now=107.0)
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert preds == ["p", "p", "p"]  # only the odd rows (3, 5, 7) carried a prediction
    # rows older than max_age are dropped: at t=114.5 only rows stamped >= 104.5 remain
    frame, _ = win.snapshot(now=114.5)
    assert frame["a"].tolist() == [5.0, 6.0, 7.0]
    assert len(win) == 3
    win.add({"a": 9, "b": 0}, now=200.0)  # adding also expires
    assert len(win) == 1
    win.clear()
    assert len(win) == 0
    frame, preds = win.snapshot(now=200.0)
    assert frame.empty and list(frame.columns) == ["a", "b"] and preds == []


def test_window_is_thread_safe() -> None:
    win = DriftWindow(["a"], max_size=1000, max_age_seconds=3600.0)

    def writer(k: int) -> None:
        for i in range(2000):
            win.add({"a": k * 10000 + i}, prediction=str(k))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for _ in range(50):
        frame, preds = win.snapshot()
        assert len(frame) <= 1000 and len(preds) == len(frame)
    for t in threads:
        t.join()
    frame, preds = win.snapshot()
    assert len(frame) == 1000 and len(preds) == 1000


@pytest.mark.timeout(120)  # slow: importing evidently and rendering its report takes a few seconds
def test_html_report_names_the_columns(reference: pd.DataFrame) -> None:
    window = _frame(np.random.default_rng(15), 300, shift_sd=1.0)
    html = html_report(reference, window)
    assert html.lstrip().lower().startswith(("<!doctype html", "<html"))
    for column in ("latency", "tier", "count", "ratio"):
        assert column in html
