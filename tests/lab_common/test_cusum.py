"""The in-service CUSUM (lab_common/cusum.py): the detector, its signal, its gauges, its settings, and the
promtool tests and inhibition of the alert that reads it."""

from __future__ import annotations

import math
import random
import runpy
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, Histogram

from lab_common.cusum import (
    Cusum,
    CusumMonitor,
    CusumParams,
    HistogramQuantile,
    Watched,
    interpolated_quantile,
)
from lab_common.metrics import LATENCY_BUCKETS
from lab_common.settings import ServiceSettings
from monitoring.anomaly import SIGNALS_BY_NAME

ROOT = Path(__file__).resolve().parents[2]
PARAMS = CusumParams(baseline_points=120, warmup_points=24, abs_floor=0.005)


def run(values: list[float], params: CusumParams = PARAMS) -> tuple[Cusum, list[float], list[float]]:
    detector, up, down = Cusum(params), [], []
    for v in values:
        detector.update(v)
        up.append(detector.score("up"))
        down.append(detector.score("down"))
    return detector, up, down


def noisy(n: int, level: float = 0.06, noise: float = 0.006, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, noise) for _ in range(n)]


def first(scores: list[float], start: int = 0) -> int | None:
    return next((i for i in range(start, len(scores)) if scores[i] >= 1), None)


def test_nothing_is_scored_during_the_warm_up() -> None:
    detector, up, down = run([0.06] * 23 + [10.0])  # the 24th value arrives with 23 in the baseline
    assert max(up) == 0 and max(down) == 0
    assert detector.ready


def test_healthy_noise_with_single_outliers_never_alarms() -> None:
    values = noisy(2000)
    for i in range(50, 2000, 97):
        values[i] = 0.5  # one interval at 8x the level: winsorised at `clip` spreads
    _, up, down = run(values)
    assert max(up) < 1 and max(down) < 1


def test_a_level_shift_alarms_up_within_a_few_intervals_and_a_drop_down() -> None:
    _, up, _ = run(noisy(200) + noisy(100, level=0.09, seed=2))
    assert first(up, 200) is not None and first(up, 200) - 200 <= 6
    assert first(up) == first(up, 200)  # not before the shift
    _, _, down = run(noisy(200) + noisy(100, level=0.03, seed=2))
    assert first(down, 200) is not None


def test_a_slow_ramp_alarms_before_it_reaches_a_static_threshold() -> None:
    ramp = [v + 0.15 * min(i / 120, 1.0) for i, v in enumerate(noisy(200, level=0.002, noise=0.0003, seed=3))]
    _, up, _ = run(noisy(200, level=0.002, noise=0.0003) + ramp)
    alarm = first(up, 200)
    assert alarm is not None
    assert 0.15 * (alarm - 200) / 120 < 0.05  # alarmed while the ramp had added under 50 ms


def test_the_statistic_is_capped_and_drains_once_the_fault_ends() -> None:
    p = PARAMS
    _, up, _ = run(noisy(200) + noisy(40, level=0.3, seed=2) + noisy(100, seed=4))
    assert max(up) == pytest.approx(p.cap)
    drain = math.ceil((p.cap - 1) * p.decision / p.slack)  # normal intervals from the cap back under h
    assert max(up[240 + drain :]) < 1


def test_a_lasting_change_becomes_the_new_normal() -> None:
    _, up, _ = run(noisy(200) + noisy(400, level=0.09, seed=2))
    assert max(up[200:260]) >= 1
    assert max(up[200 + PARAMS.baseline_points :]) < 1  # the baseline caught up: the alarm decayed


def test_non_finite_values_are_skipped_and_counted() -> None:
    values = noisy(100)
    detector, _, _ = run(values)
    with_gaps, _, _ = run([x for v in values for x in (v, math.nan, math.inf)])
    assert with_gaps.skipped == 200
    assert (with_gaps.up, with_gaps.down) == (detector.up, detector.down)


def test_memory_is_bounded_by_the_baseline_window() -> None:
    detector, _, _ = run(noisy(1000))
    assert len(detector._baseline) == PARAMS.baseline_points


@pytest.mark.parametrize(
    "changes",
    [{"slack": -1}, {"decision": 0}, {"clip": 0.5, "slack": 0.75}, {"cap": 0.5}, {"warmup_points": 1},
     {"warmup_points": 200}],
)  # fmt: skip
def test_parameters_are_validated(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="CUSUM needs"):
        CusumParams(**{"baseline_points": 120, **changes})  # type: ignore[arg-type]


def test_interpolated_quantile_reads_like_histogram_quantile() -> None:
    bounds = (0.001, 0.0025, 0.005, math.inf)
    assert interpolated_quantile(bounds, [0, 10, 0, 0], 0.5, 3) == pytest.approx(0.00175)
    assert interpolated_quantile(bounds, [4, 0, 0, 6], 0.5, 3) == 0.005  # +Inf: the highest finite bound
    assert math.isnan(interpolated_quantile(bounds, [1, 1, 0, 0], 0.5, 3))  # too few to judge


def test_histogram_signal_is_the_median_of_each_interval() -> None:
    histogram = Histogram("t_latency_seconds", "t", ["endpoint"], buckets=LATENCY_BUCKETS,
                          registry=CollectorRegistry())  # fmt: skip
    child = histogram.labels("/predict")
    signal = HistogramQuantile([child])
    for _ in range(10):
        child.observe(0.03)
    assert 0.025 < signal.read() <= 0.05
    assert math.isnan(signal.read())  # nothing new since the last read
    for _ in range(10):
        child.observe(0.2)
    assert 0.1 < signal.read() <= 0.25


def test_monitor_sets_both_directions_and_survives_a_broken_signal() -> None:
    gauge = Gauge("t_cusum_score", "t", ["signal", "direction"], registry=CollectorRegistry())
    values = iter([0.06] * 30 + [1.0] * 10)

    def broken() -> float:
        raise RuntimeError("signal gone")

    ok = Watched("latency", lambda: next(values), Cusum(PARAMS))
    flushes: list[int] = []
    monitor = CusumMonitor(gauge, [Watched("broken", broken, Cusum(PARAMS)), ok], lambda: flushes.append(1))
    assert gauge.labels("latency", "up")._value.get() == 0
    for _ in range(40):
        monitor.tick()
    assert len(flushes) == 40
    assert gauge.labels("latency", "up")._value.get() >= 1
    assert gauge.labels("latency", "down")._value.get() == 0
    assert gauge.labels("broken", "up")._value.get() == 0


def test_settings_lab_profile_warms_up_in_minutes_production_in_half_an_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = ServiceSettings(port=1, lab_profile=True).cusum_params()
    production = ServiceSettings(port=1).cusum_params()
    assert (lab.baseline_points, lab.warmup_points) == (120, 24)
    assert (production.baseline_points, production.warmup_points) == (720, 360)
    from ml_api.settings import MLSettings

    monkeypatch.setenv("ML_CUSUM_DECISION", "12")
    monkeypatch.setenv("ML_CUSUM_INTERVAL_SECONDS", "15")
    tuned = MLSettings().cusum_params()
    assert tuned.decision == 12 and tuned.baseline_points == 240


def test_cusum_promtool_tests_are_what_their_script_writes() -> None:
    """prometheus/tests/cusum_test.yml is generated (seeded series through the real detector)."""
    path = ROOT / "prometheus" / "tests" / "make_cusum_test.py"
    script = runpy.run_path(str(path), run_name="make_cusum_test")
    assert script["OUT"].read_text(encoding="utf-8") == script["render"](), f"run `python {path}`"


def test_cusum_alert_is_muted_by_the_latency_alerts_of_the_same_service() -> None:
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    rules = [
        r for r in config["inhibit_rules"] if r["target_matchers"] == ['alertname="LatencyCusumAnomaly"']
    ]
    assert len(rules) == 1 and rules[0]["equal"] == ["service"]
    latency = SIGNALS_BY_NAME["latency_p90"]
    (matcher,) = rules[0]["source_matchers"]
    assert matcher.startswith('alertname=~"') and matcher.endswith('"')
    assert set(matcher[len('alertname=~"') : -1].split("|")) == {*latency.static_alerts, latency.alert}
