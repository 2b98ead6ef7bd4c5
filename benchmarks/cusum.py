"""`python -m benchmarks.cusum`: what the in-service CUSUM (lab_common/cusum.py) costs and how soon it alarms.

Cost: the request path pays nothing (the signal is read from the latency histogram the middleware already
keeps); what remains is one `CusumMonitor.tick()` per interval per process, timed here with the lab's and the
production profile's baseline windows (a median and a MAD over 120 or 720 values) and a histogram holding an
interval's worth of requests. Delay: the synthetic cases of prometheus/tests/make_cusum_test.py (the same
series the promtool tests feed Prometheus), seconds from the fault to the first alarm and to the alert.
"""

from __future__ import annotations

import argparse
import random
import runpy
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, Histogram

from lab_common.cusum import Cusum, CusumMonitor, HistogramQuantile, Watched
from lab_common.metrics import LATENCY_BUCKETS
from lab_common.settings import ServiceSettings

CASES_SCRIPT = Path(__file__).resolve().parents[1] / "prometheus" / "tests" / "make_cusum_test.py"


def tick_cost(lab_profile: bool, ticks: int, requests_per_tick: int) -> float:
    """Microseconds per tick, the histogram's bucket reads and the detector's update included."""
    registry = CollectorRegistry()
    histogram = Histogram(
        "b_seconds", "b", ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=registry
    )
    child = histogram.labels("/predict", "POST")
    gauge = Gauge("b_cusum_score", "b", ["signal", "direction"], registry=registry)
    params = ServiceSettings(port=1, lab_profile=lab_profile).cusum_params()
    signal = HistogramQuantile([child])
    monitor = CusumMonitor(gauge, [Watched("latency", signal.read, Cusum(params))], lambda: None)
    rng = random.Random(1)
    spent = 0.0
    for _ in range(ticks):
        for _ in range(requests_per_tick):  # outside the timing: the middleware does this anyway
            child.observe(rng.lognormvariate(-6, 0.3))
        start = time.perf_counter()
        monitor.tick()
        spent += time.perf_counter() - start
    return spent / ticks * 1e6


def delays() -> list[str]:
    script = runpy.run_path(str(CASES_SCRIPT), run_name="benchmarks_cusum")
    rng, step, fault_at = random.Random(script["SEED"]), script["STEP_S"], script["FAULT_AT"]
    lines = []
    for case in script["CASES"]:
        up = script["scores"](script["signal"](case, rng))
        firing = script["evaluated_firing"](up, case.traffic)
        alarm = script["first_alarm"](up)
        if alarm is None and not firing:
            lines.append(f"| {case.comment} | - | - |")
            continue
        alarm_s = "-" if alarm is None else f"{(alarm - fault_at) * step:+d} s"
        fired_s = f"{(firing[0] - fault_at) * step:+d} s" if firing else "-"
        lines.append(f"| {case.comment} | {alarm_s} | {fired_s} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--requests-per-tick", type=int, default=500, help="observations between two ticks")
    args = parser.parse_args(argv)
    per = args.requests_per_tick
    print(f"| profile | baseline values | µs per tick | µs per request ({per} requests per tick) |")
    print("| --- | --- | --- | --- |")
    for lab in (True, False):
        cost = tick_cost(lab, args.ticks, args.requests_per_tick)
        points = ServiceSettings(port=1, lab_profile=lab).cusum_params().baseline_points
        print(f"| {'lab' if lab else 'production'} | {points} | {cost:.1f} | {cost / per:.3f} |")
    print()
    print("| synthetic case (make_cusum_test.py) | first alarm after the fault | alert fires |")
    print("| --- | --- | --- |")
    print("\n".join(delays()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
