"""Anomaly rules (monitoring/anomaly.py): the inlined expression the benchmark grades equals the recorded
rules, Alertmanager mutes each anomaly alert by the static alerts of its signal, the NAB scorer's arithmetic,
and the benchmark end to end on a small synthetic NAB-layout directory with a real Prometheus."""

from __future__ import annotations

import json
import math
import runpy
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks import anomaly as bench
from benchmarks.nab_score import PROFILES as NAB_PROFILES
from benchmarks.nab_score import best_score, file_points
from monitoring.anomaly import (
    ANOMALY_TYPES,
    K_TYPE,
    PROFILES,
    SIGNALS,
    SIGNALS_BY_NAME,
    score_expr,
    signal_rules,
)

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (`make tools`)")
    return path


def test_inlined_score_equals_the_recorded_rules(tmp_path: Path) -> None:
    """promtool evaluates the rules and the one-expression form side by side over a series with a shift."""
    signal = SIGNALS[0]
    inline = score_expr(signal.expr, profile="lab", abs_floor=signal.abs_floor, stage="anomaly:score")
    values = " ".join(f"{0.05 + 0.004 * math.sin(i / 7) + (0.1 if i > 160 else 0):.4f}" for i in range(240))
    case = {
        "rule_files": [str(ROOT / "prometheus" / "rules" / "anomaly.yml")],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": f'{signal.expr}{{service="ml_api"}}', "values": values}],
                "promql_expr_test": [
                    {
                        # No series = no point where they differ; the second case proves the first can fail.
                        "expr": f'abs(anomaly:score{{anomaly_name="{signal.name}"}}'
                        f" - on (service) ({inline}))"
                        " > 1e-9",
                        "eval_time": f"{minute}m",
                        "exp_samples": [],
                    }
                    for minute in (20, 41, 45, 55)
                ]
                + [{"expr": f"count({inline} > 0.5)", "eval_time": "41m", "exp_samples": [{"value": 1}]}],
            }
        ],
    }
    path = tmp_path / "inline_test.yml"
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    result = subprocess.run([tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def run_production_case(
    path: Path, signal: str, series: dict[str, list[float]], tested: int, checks: dict[str, int]
) -> None:
    """promtool over the production anomaly rules: 5-minute samples of `signal` per service, and each check's
    expression counted at step `tested`."""
    case = {
        "rule_files": [str(ROOT / "prometheus" / "profiles" / "production" / "rules" / "anomaly.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "5m",
                "input_series": [
                    {"series": f'{signal}{{service="{name}"}}', "values": " ".join(f"{v:.4f}" for v in vs)}
                    for name, vs in series.items()
                ],
                "promql_expr_test": [
                    {"expr": f"count({e})", "eval_time": f"{tested * 5}m", "exp_samples": [{"value": n}]}
                    for e, n in checks.items()
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    result = subprocess.run([tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_calibration_asks_more_of_a_series_whose_excursions_are_routine(tmp_path: Path) -> None:
    """Production rules (z calibrated against its own last day): the same 0.1 s spike, 16 spreads, scores over
    0.5 on a quiet latency series and under 0.5 on one where 0.12 s spikes come every three hours."""
    signal = SIGNALS_BY_NAME["latency_p90"]
    quiet = [0.1 + 0.01 * math.sin(i / 5) for i in range(700)]
    routine = [v + (0.12 if i % 36 == 20 else 0) for i, v in enumerate(quiet)]
    tested = 600  # 50 hours in: a day of baseline and a day of calibration behind it
    for values in (quiet, routine):
        values[tested] += 0.1
    matchers = f'anomaly_name="{signal.name}", anomaly_type="spike"'
    checks = {  # expression -> its count at the tested spike
        f'anomaly:zscore_by_type{{{matchers}, service="routine"}} > 6': 1,  # uncalibrated, it would fire
        f'anomaly:score_by_type{{{matchers}, service="routine"}} < 0.5': 1,
        f'anomaly:score_by_type{{{matchers}, service="quiet"}} > 0.5': 1,
    }
    run_production_case(
        tmp_path / "calibration_test.yml", signal.expr, {"quiet": quiet, "routine": routine}, tested, checks
    )


def test_detection_value_says_how_far_above_its_own_day(tmp_path: Path) -> None:
    """Production rules: a detection carries z / (z + the day's highest z), so the same kind of spike is worth
    more on a quiet series (~0.9) than on one whose day held 0.08 s spikes every three hours (~0.6): one
    threshold over many series can then drop the detections that barely beat their day."""
    signal = SIGNALS_BY_NAME["latency_p90"]
    tested = 600  # 50 hours in: a day of baseline and a day of calibration behind it
    quiet = list(0.1 + np.random.default_rng(7).normal(0, 0.005, tested + 1))
    routine = [v + (0.08 if i % 36 == 20 else 0) for i, v in enumerate(quiet)]
    routine[200] += 0.1  # 33 hours earlier, a higher one: the tested spike is no new extreme for the week
    quiet[tested] += 0.15
    routine[tested] += 0.12
    matcher = f'anomaly_name="{signal.name}"'
    checks = {  # expression -> its count at the tested spike
        f'anomaly:detection{{{matcher}, service="quiet"}} > 0.8': 1,
        f'anomaly:score{{{matcher}, service="routine"}} >= 0.5': 1,  # it is an anomaly there too ...
        f'anomaly:novelty{{{matcher}, service="routine"}} < 0.7': 1,  # ... a weaker one
        f'anomaly:novelty{{{matcher}, service="routine"}} >= 0.5': 1,
    }
    run_production_case(
        tmp_path / "novelty_test.yml", signal.expr, {"quiet": quiet, "routine": routine}, tested, checks
    )


def test_a_level_the_baseline_day_already_reached_is_no_new_level_shift(tmp_path: Path) -> None:
    """Production rules (direction-aware level shift): the same +0.05 s level, 10 spreads, is a level shift
    on a series that never went there, and none on one whose day already held a higher level (a return to a
    known excursion, or wandering inside the day's range, is not news)."""
    signal = SIGNALS_BY_NAME["latency_p90"]
    tested = 591  # two days in; the excursion under test started 30 minutes before (step 586)
    fresh = list(0.1 + np.random.default_rng(3).normal(0, 0.002, tested + 1))
    repeat = list(fresh)
    for i in range(586, tested + 1):
        fresh[i] += 0.05
        repeat[i] += 0.05
    for i in range(400, 412):  # an hour at a higher level, 15 hours earlier
        repeat[i] += 0.06
    matchers = f'anomaly_name="{signal.name}", anomaly_type="level_shift"'
    checks = {  # expression -> its count at the tested step
        f'anomaly:zscore_by_type{{{matchers}, service="fresh"}} > 6': 1,
        f'anomaly:zscore_by_type{{{matchers}, service="repeat"}} == 0': 1,
    }
    run_production_case(
        tmp_path / "directional_test.yml", signal.expr, {"fresh": fresh, "repeat": repeat}, tested, checks
    )


def test_long_shift_finds_a_small_lasting_shift_of_a_noisy_series(tmp_path: Path) -> None:
    """Production rules (long_shift type): white noise moved up by 1.5 of its spreads for two hours is no
    spike, level shift, ramp, jump or seasonal change, but its 2-hour mean is ~7 spreads of 2-hour means
    away from the baseline (a series that does not wander: persistence 1, k stays 4)."""
    signal = SIGNALS_BY_NAME["latency_p90"]
    tested = 600  # 50 hours in: a day of baseline and a day of calibration behind it
    values = list(0.1 + np.random.default_rng(11).normal(0, 0.01, tested + 1))
    for i in range(tested - 23, tested + 1):
        values[i] += 0.015
    matcher = f'anomaly_name="{signal.name}", service="noisy"'
    checks = {  # expression -> its count at the tested step
        f'anomaly:score_by_type{{{matcher}, anomaly_type="long_shift"}} > 0.5': 1,
        f'anomaly:score_by_type{{{matcher}, anomaly_type!="long_shift"}} < 0.5': len(ANOMALY_TYPES) - 1,
    }
    run_production_case(tmp_path / "long_shift_test.yml", signal.expr, {"noisy": values}, tested, checks)


def test_a_value_beyond_the_weeks_range_is_an_extreme(tmp_path: Path) -> None:
    """Production rules (extreme type): a daily wave whose last peak rises 20 % higher than every earlier one
    lies a tenth of the week's range beyond it (score ~0.67). No other type sees it: the peak is under 2 of
    the day's spreads from its median, and the same peak at last week's height is no extreme at all."""
    signal = SIGNALS_BY_NAME["latency_p90"]
    tested = 648  # the third daily peak (54 hours in): a day of baseline and of calibration behind it
    wave = [0.05 * math.sin(2 * math.pi * i / 288) for i in range(tested + 1)]
    same = [0.1 + v for v in wave]
    # only the last 50 minutes: what the calibration window (ending an hour ago) holds is no extreme yet
    higher = [0.1 + v * (1.2 if i > tested - 10 else 1) for i, v in enumerate(wave)]
    matcher = f'anomaly_name="{signal.name}"'
    checks = {  # expression -> its count at the tested peak
        f'anomaly:score_by_type{{{matcher}, anomaly_type="extreme", service="higher"}} > 0.6': 1,
        f'anomaly:score_by_type{{{matcher}, anomaly_type!="extreme", service="higher"}} < 0.5': len(
            ANOMALY_TYPES
        )
        - 1,
        f'anomaly:score_by_type{{{matcher}, anomaly_type="extreme", service="same"}} == 0': 1,
    }
    run_production_case(
        tmp_path / "extreme_test.yml", signal.expr, {"higher": higher, "same": same}, tested, checks
    )


def test_a_daily_event_an_hour_and_a_half_late_is_still_routine(tmp_path: Path) -> None:
    """Production rules (calibration over 26 hours): a 0.12 s spike that came 25.5 hours after a 0.125 s one
    (a daily job running late) is routine, while the same spike after a quiet history scores over 0.5. A
    calibration window of exactly a day (ending an hour ago) no longer held the earlier one: it fired."""
    signal = SIGNALS_BY_NAME["latency_p90"]
    tested = 650  # 54 hours in
    quiet = [0.1 + 0.01 * math.sin(i / 5) for i in range(tested + 1)]
    daily = list(quiet)
    for i in (tested - 2 * 306, tested - 306):  # every 25.5 hours
        daily[i] += 0.125
    for values in (quiet, daily):
        values[tested] += 0.12
    matcher = f'anomaly_name="{signal.name}"'
    checks = {  # expression -> its count at the tested spike
        f'anomaly:score{{{matcher}, service="daily"}} < 0.5': 1,
        f'anomaly:score{{{matcher}, service="quiet"}} > 0.5': 1,
    }
    run_production_case(
        tmp_path / "late_test.yml", signal.expr, {"daily": daily, "quiet": quiet}, tested, checks
    )


def test_each_anomaly_alert_is_muted_by_the_static_alerts_of_its_signal() -> None:
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    rules = {
        tuple(rule["target_matchers"]): tuple(rule["source_matchers"]) for rule in config["inhibit_rules"]
    }
    for signal in SIGNALS:
        if signal.alert and signal.static_alerts:
            source = rules.get((f'alertname="{signal.alert}"',))
            assert source == (f'alertname=~"{"|".join(signal.static_alerts)}"',), signal.alert


def test_signal_promtool_tests_are_what_their_script_writes() -> None:
    """prometheus/tests/anomaly_signals_test.yml is generated (seeded series): edit the script, run it."""
    path = ROOT / "prometheus" / "tests" / "make_anomaly_signals_test.py"
    script = runpy.run_path(str(path), run_name="make_anomaly_signals_test")
    committed = script["OUT"].read_text(encoding="utf-8")
    assert committed == script["render"](), f"run `python {path.relative_to(ROOT)}` (or `make generate`)"


def test_make_generate_renders_the_signal_promtool_tests_too() -> None:
    """`make generate` and its --check cover the file, by running the script (which stays usable alone)."""
    from monitoring import generate

    path = "prometheus/tests/anomaly_signals_test.yml"
    script = runpy.run_path(str(ROOT / "prometheus" / "tests" / "make_anomaly_signals_test.py"))
    assert generate.expected(path) == script["render"]()
    targets = list(generate.TARGETS)
    assert targets.index(path) > targets.index("prometheus/rules/alerts.yml"), "rules first: it reads them"
    assert targets.index(path) > targets.index("prometheus/rules/anomaly.yml")


def test_every_signal_with_an_alert_has_its_promtool_cases() -> None:
    text = (ROOT / "prometheus" / "tests" / "anomaly_signals_test.yml").read_text(encoding="utf-8")
    text += (ROOT / "prometheus" / "tests" / "anomaly_test.yml").read_text(encoding="utf-8")
    missing = [s.alert for s in SIGNALS if s.alert and s.alert not in text]
    assert not missing, missing


def test_route_of_an_anomaly_alert_is_slack_only() -> None:
    result = subprocess.run(
        [tool("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml",
         "alertname=LatencyMetricAnomaly", "severity=warning", "family=anomaly", "service=ml_api"],
        cwd=ROOT / "alertmanager", capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["slack"]


def test_nab_score_of_perfect_missed_and_noisy_detectors() -> None:
    n, window = 1000, (400, 499)
    standard = NAB_PROFILES["standard"]
    perfect = np.zeros(n)
    perfect[window[0]] = 1.0
    assert best_score([file_points(perfect, [window], 0)], 1, standard)[0] == pytest.approx(100.0)
    assert best_score([file_points(np.zeros(n), [window], 0)], 1, standard)[0] == pytest.approx(0.0)
    late_and_noisy = np.zeros(n)
    late_and_noisy[[window[1], 700, 800]] = 1.0  # at the window's end (worth ~0) and two false positives
    score, _ = best_score([file_points(late_and_noisy, [window], 0)], 1, standard)
    assert score < 50.0


def test_benchmark_records_each_rule_after_the_rules_it_reads() -> None:
    rules = signal_rules(bench.SIGNAL, PROFILES[bench.PROFILE])
    rounds = bench.rule_levels(rules, bench.DETECTION)
    done: set[str] = set()
    for members in rounds:
        for rule in members:
            reads = {r["record"] for r in rules if f"{r['record']}{{" in rule["expr"]}
            assert reads <= done, (rule["record"], reads - done)
        done |= {rule["record"] for rule in members}
    assert rounds[-1] == [rule for rule in rules if rule["record"] == bench.DETECTION]
    assert "anomaly:signal:band_upper" not in done  # the bands are for dashboards, not the detection


def write_series(directory: Path, name: str, values: np.ndarray) -> None:
    stamps = pd.date_range("2015-01-01", periods=len(values), freq="5min")
    directory.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
    frame.to_csv(directory / name, index=False)


def test_benchmark_end_to_end_on_synthetic_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool("promtool")
    tool("prometheus")
    rng = np.random.default_rng(14)
    n = 1200
    noise = 10 + rng.normal(0, 0.5, n)
    shifted = noise.copy()
    shifted[900:] += 8  # a level shift of 16 standard deviations
    data = tmp_path / "data"
    write_series(data / "synthetic", "shift.csv", shifted)
    write_series(data / "synthetic", "calm.csv", noise)
    stamps = pd.date_range("2015-01-01", periods=n, freq="5min")
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    windows = {"synthetic/shift.csv": [[stamps[850].strftime(fmt), stamps[950].strftime(fmt)]]}
    (data / "windows.json").write_text(json.dumps(windows))
    output = tmp_path / "out"
    assert bench.main(["--data", str(data), "--output", str(output)]) == 0
    shift = pd.read_csv(output / "synthetic" / "shift.csv")
    calm = pd.read_csv(output / "synthetic" / "calm.csv")
    assert list(shift.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert len(shift) == n and shift["label"].sum() == 101
    assert shift["anomaly_score"].between(0, 1).all()
    # The first day fills the baseline (NAB does not score its first 15 % either): look after it.
    scores = shift["anomaly_score"].to_numpy()
    first = 850 + int(np.flatnonzero(scores[850:] >= 0.5)[0])
    assert 900 <= first <= 910  # detected within 10 points of the shift, not before
    # White noise may set one new record for its short history (the extreme type), no more, and the shift
    # outranks it: a threshold between them (NAB's sweep) keeps only the shift.
    calm_detections = calm["anomaly_score"].iloc[300:]
    assert (calm_detections >= 0.5).sum() <= 1
    assert scores[first] > max(calm_detections.max(), scores[300:850].max())
    assert "synthetic" in capsys.readouterr().out


def test_a_weekend_like_the_last_one_is_no_seasonal_news(tmp_path: Path) -> None:
    """nab profile (a real Prometheus over the benchmark's TSDB): a series lower on two days of each week.
    The first weekend is unlike the day before it (seasonal z well over k); the second is like the same
    hours a week earlier, and the seasonal type takes the smaller of the day-over-day and week-over-week z."""
    tool("promtool")
    tool("prometheus")
    day = 288
    steps = np.arange(15 * day)
    weekend = (steps // day) % 7 >= 5
    noise = np.random.default_rng(5).normal(0, 0.3, len(steps))
    values = 10 + np.sin(2 * np.pi * steps / day) - 4 * weekend + noise
    data = tmp_path / "data"
    write_series(data / "weekly", "weekly.csv", values)
    bench.run(data, tmp_path / "out", tmp_path)
    seasonal = 'anomaly:zscore_by_type{anomaly_type="seasonal"}'
    with bench.prometheus(tmp_path / "tsdb", tmp_path) as url, httpx.Client(timeout=None) as client:
        (result,) = bench.query_range(client, url, seasonal, len(steps))
    z = {(int(t) - bench.T0) // bench.STEP: float(v) for t, v in result["values"]}
    two_hours_in = 24
    first, second = 5 * day + two_hours_in, 12 * day + two_hours_in
    assert z[first] > K_TYPE["seasonal"]  # unlike Friday, and no week of history yet
    assert z[second] < K_TYPE["seasonal"] / 4  # still unlike Friday, but like last Saturday


def test_simulation_shapes_stay_under_the_static_threshold() -> None:
    from monitoring.contract import threshold
    from simulations.anomaly import SHAPES, AnomalyScenario, delay_at

    peak, ramp = 150.0, 300.0
    for shape in SHAPES:
        delays = [delay_at(shape, t, peak, ramp) for t in range(0, 600, 10)]
        assert max(delays) == peak and max(delays) < threshold("MLHighLatencyP90") * 1000
    assert delay_at("spike", 70, peak, ramp) == 0.0  # a spike ends
    assert delay_at("shift", 590, peak, ramp) == peak  # a shift stays
    assert delay_at("ramp", 150, peak, ramp) == pytest.approx(peak / 2)  # a ramp climbs
    with pytest.raises(ValueError, match="MLHighLatencyP90"):
        AnomalyScenario(
            shape="ramp",
            warmup=1,
            peak_ms=240,
            ramp_seconds=1,
            users=1,
            ml_url="http://x",
            rag_url="http://y",
        )
