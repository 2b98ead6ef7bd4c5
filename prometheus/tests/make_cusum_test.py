"""Writes prometheus/tests/cusum_test.yml: promtool tests of LatencyCusumAnomaly over synthetic series.

The CUSUM runs in the services (lab_common/cusum.py), so its gauge cannot come from the rules: this script
draws each case's median latency per 5-second interval (seeded), runs the services' own detector with the
lab profile's parameters over it, and writes the gauge it would export as the input series; promtool then
checks the alert (threshold, traffic guard, `for`) on it. Every case is an hour: a healthy series that must
raise nothing, and from minute 30 a fault (spike, level shift, slow ramp) that must fire within its stated
time, while seasonal noise, an improvement and a fault without traffic stay silent.

`.venv/bin/python prometheus/tests/make_cusum_test.py` rewrites the file; tests/lab_common/test_cusum.py
checks that the committed file is what this script writes.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(ROOT))

from lab_common.cusum import Cusum  # noqa: E402
from lab_common.settings import ServiceSettings  # noqa: E402
from monitoring.contract import alert  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "cusum_test.yml"
STEP_S = 5  # the lab's scrape and CUSUM interval
POINTS = 721  # an hour, both ends included
FAULT_AT = 360  # minute 30
SEED = 14
ALERT = "LatencyCusumAnomaly"
FOR_S = int(alert(ALERT).for_.get("lab").removesuffix("s"))  # the contract's lab `for`
PARAMS = ServiceSettings(port=1, lab_profile=True).cusum_params()

Shape = Callable[[int, float], float]  # (point index, healthy value) -> value


def healthy(level: float, noise: float, rng: random.Random, outliers: bool = True) -> list[float]:
    """A median latency with gaussian noise and, every ~7 minutes, one outlier interval at 5x the level (a
    GC pause, a neighbour's CPU burst): one interval is no fault."""
    values = [max(level + rng.gauss(0, noise), level / 4) for _ in range(POINTS)]
    if outliers:
        for i in range(37, POINTS, 83):
            values[i] = level * 5
    return values


def after(fn: Callable[[float, float], float]) -> Shape:
    """fn(seconds since the fault, healthy value) from FAULT_AT on."""
    return lambda i, v: fn((i - FAULT_AT) * STEP_S, v) if i >= FAULT_AT else v


@dataclass(frozen=True)
class Case:
    comment: str
    level: float  # seconds
    noise: float
    shape: Shape | None = None
    fires_by: int = 0  # seconds after the fault by which the alert fires (0: never)
    traffic: bool = True
    wave: float = 0.0  # seasonal: amplitude of a wave, as a share of the level ...
    period: int = 0  # ... and its period, seconds

    @property
    def service(self) -> str:
        """rag_api's cases (tens of ms) export its gauge, ml_api's theirs: the alert reads both."""
        return "rag_api" if self.level > 0.01 else "ml_api"


CASES = (
    Case("ml_api healthy: 2 ms, noise and single outlier intervals: silent for an hour.", 0.002, 0.0003),
    Case("rag_api healthy: 60 ms, noisy: silent for an hour.", 0.06, 0.006),
    Case(
        "Seasonal noise inside the baseline: rag_api's 60 ms in 5-minute cycles of +-20 %: silent.",
        0.06,
        0.004,
        wave=0.2,
        period=300,
    ),
    Case(
        "Seasonal noise slower than the baseline: a 3-hour wave of +-30 % (its slope, 0.6 % a minute, is no "
        "ramp): silent.",
        0.06,
        0.004,
        wave=0.3,
        period=10_800,
    ),
    Case(
        "Spike: ml_api +60 ms for one minute (simulations anomaly --shape spike, lower).",
        0.002,
        0.0003,
        after(lambda s, v: v + 0.06 if s < 60 else v),
        fires_by=60,
    ),
    Case(
        "Level shift: rag_api 60 to 90 ms for good.",
        0.06,
        0.006,
        after(lambda s, v: v * 1.5),
        fires_by=60,
    ),
    Case(
        "Slow ramp: ml_api +150 ms over 10 minutes (simulations anomaly --shape ramp).",
        0.002,
        0.0003,
        after(lambda s, v: v + 0.15 * min(s / 600, 1.0)),
        fires_by=120,
    ),
    Case(
        "Slow ramp: rag_api +50 % over 20 minutes.",
        0.06,
        0.006,
        after(lambda s, v: v * (1 + 0.5 * min(s / 1200, 1.0))),
        fires_by=360,
    ),
    Case("Improvement: rag_api's latency halves for good: silent.", 0.06, 0.006, after(lambda s, v: v / 2)),
    Case(
        "The ml_api ramp with no traffic (under the guard's rate): silent.",
        0.002,
        0.0003,
        after(lambda s, v: v + 0.15 * min(s / 600, 1.0)),
        traffic=False,
    ),
)


def signal(case: Case, rng: random.Random) -> list[float]:
    values = healthy(case.level, case.noise, rng)
    if case.wave:
        phase = [2 * math.pi * i * STEP_S / case.period for i in range(POINTS)]
        values = [v + case.level * case.wave * math.sin(p) for p, v in zip(phase, values, strict=True)]
    if case.shape is not None:
        values = [case.shape(i, v) for i, v in enumerate(values)]
    return values


def scores(values: list[float]) -> list[float]:
    """The `up` gauge the service exports after each interval (0 during the warm-up)."""
    detector, out = Cusum(PARAMS), []
    for v in values:
        detector.update(v)
        out.append(detector.score("up"))
    return out


def first_alarm(up: list[float], start: int = 0) -> int | None:
    return next((i for i in range(start, len(up)) if up[i] >= 1), None)


def evaluated_firing(up: list[float], traffic: bool) -> list[int]:
    """Points where the alert fires: the score >= 1 for `for` seconds (every point in between)."""
    held = FOR_S // STEP_S
    return [i for i in range(held, len(up)) if traffic and all(u >= 1 for u in up[i - held : i + 1])]


def alert_rule() -> dict:
    groups = yaml.safe_load((HERE.parent / "rules" / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return next(rule for group in groups for rule in group["rules"] if rule.get("alert") == ALERT)


def expected(service: str, score: float) -> dict:
    """Exact labels and annotations, as Prometheus renders the rule's templates for this case."""
    rule = alert_rule()
    values = {"{{ $labels.service }}": service, '{{ printf "%.2f" $value }}': f"{score:.2f}"}
    annotations = {}
    for key, text in rule["annotations"].items():
        for template, value in values.items():
            text = text.replace(template, value)
        annotations[key] = text
    return {"exp_labels": labels(service), "exp_annotations": annotations}


def labels(service: str) -> dict[str, str]:
    return {
        "alertname": ALERT,
        "service": service,
        "severity": "warning",
        "family": "anomaly",
        "anomaly_name": "latency",
        "anomaly_type": "level_shift",
        "detector": "cusum",
    }


def check_case(index: int, case: Case, firing: list[int]) -> int | None:
    """The case's own promise (fires within `fires_by` of the fault, or never): the point to check it at."""
    if not case.fires_by:
        if firing:
            raise SystemExit(f"case{index}: fires at {firing[0] * STEP_S}s, expected silent")
        return None
    at = FAULT_AT + case.fires_by // STEP_S
    if at not in firing or min(firing) < FAULT_AT:
        raise SystemExit(
            f"case{index}: not firing {case.fires_by}s after the fault, or before it: {firing[:3]}"
        )
    return at


def written(score: float) -> str:
    return f"{score:.4g}"


def series(case: Case, up: list[float]) -> list[dict]:
    service, gauge = case.service, f"{case.service.removesuffix('_api')}_cusum_score"
    rate = 1.0 if case.traffic else 0.01
    return [
        {
            "series": f'{gauge}{{service="{service}",signal="latency",direction="up"}}',
            "values": " ".join(map(written, up)),
        },
        {
            "series": f'service:http_request_duration_seconds_count:rate1m{{service="{service}"}}',
            "values": f"{rate:g}+0x{POINTS - 1}",
        },
    ]


def case_block(index: int, case: Case, rng: random.Random) -> dict:
    """One promtool test per case: its own gauge, checked every minute and at its deadline."""
    up = scores(signal(case, rng))
    firing = evaluated_firing(up, case.traffic)
    at = check_case(index, case, firing)
    checks = set(range(0, POINTS, 60 // STEP_S)) | ({at} if at is not None else set())
    tests = [
        {
            "eval_time": f"{t * STEP_S}s",
            "alertname": ALERT,
            "exp_alerts": [expected(case.service, float(written(up[t])))] if t in firing else [],
        }
        for t in sorted(checks)
    ]
    return {
        "name": f"{ALERT}, case {index}: {case.comment}",
        "interval": f"{STEP_S}s",
        "input_series": series(case, up),
        "alert_rule_test": tests,
    }


def render() -> str:
    rng = random.Random(SEED)
    document = {
        "rule_files": ["../rules/alerts.yml"],
        "evaluation_interval": f"{STEP_S}s",
        "tests": [case_block(index, case, rng) for index, case in enumerate(CASES, start=1)],
    }
    header = "".join(f"# {line}".rstrip() + "\n" for line in __doc__.splitlines())
    return header.replace("# Writes", "# GENERATED by make_cusum_test.py (seeded): it", 1) + yaml.safe_dump(
        document, sort_keys=False, width=120
    )


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
