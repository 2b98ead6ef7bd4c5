"""Writes prometheus/tests/anomaly_signals_test.yml: promtool tests of the anomaly alerts of request rate,
tokens per call, cost per answer and evaluation backlog (monitoring/anomaly.py `SIGNALS`), and of the guards
of the latency one (anomaly_test.yml has its spike, shift and ramp).

`.venv/bin/python prometheus/tests/make_anomaly_signals_test.py` rewrites the file, and so does `make
generate` (monitoring/generate.py runs this script; its --check and tests/monitoring/test_anomaly.py check
that the committed file is what it writes).

Every case is three hours at the lab's 15 s evaluation: a healthy series (a 20-minute wave, seeded noise and
normal bursts) that must raise nothing from minute 20 on (the first minutes have no baseline yet), and from
t = 2h a fault shaped as a spike, a level shift or a slow ramp that must fire the intended `anomaly_type`
within its stated time, while the same fault with no traffic stays silent.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "anomaly_signals_test.yml"
POINTS = 721  # 3 h at 15 s, both ends included
FAULT_AT = 480  # t = 2h
STEP_MIN = 0.25  # minutes per point
SEED = 14

Shape = Callable[[int, float], float]  # (point index, healthy value) -> value


@dataclass(frozen=True)
class Healthy:
    """A signal's healthy series: level, wave amplitude (20-minute period), uniform noise, and optional normal
    bursts (every `burst_every` minutes, `burst_len` minutes at `burst_factor` times the value)."""

    level: float
    wave: float
    noise: float
    digits: int
    burst_every: int = 0
    burst_len: int = 0
    burst_factor: float = 1.0
    integer: bool = False

    def values(self, rng: random.Random) -> list[float]:
        out = []
        for i in range(POINTS):
            minute = i * STEP_MIN
            v = self.level + self.wave * math.sin(2 * math.pi * minute / 20) + rng.uniform(-1, 1) * self.noise
            if self.burst_every and minute % self.burst_every < self.burst_len and minute > 15:
                v *= self.burst_factor
            out.append(max(v, 0.0))
        return out

    def text(self, values: list[float]) -> str:
        if self.integer:
            return " ".join(str(round(v)) for v in values)
        return " ".join(f"{v:.{self.digits}g}" for v in values)


def after(start: int, fn: Callable[[float, float], float]) -> Shape:
    """fn(minutes since the fault, healthy value) from point `start` on."""
    return lambda i, v: fn((i - start) * STEP_MIN, v) if i >= start else v


@dataclass(frozen=True)
class Case:
    comment: str
    shape: Shape | None  # None: healthy only
    fires: str = ""  # anomaly_type expected firing at `by` minutes after the fault ("" = never fires)
    by: int = 2
    traffic: bool = True
    silent_from: int = 20  # minute from which a silent case is checked (before it, no baseline yet)
    resolved_at: int = 0  # minutes after the fault by which nothing fires any more (0: not checked)


@dataclass(frozen=True)
class SignalTests:
    """One promtool test group per alert; each case is its own `service` (SERVICE in the series names), so
    one evaluation of the rules serves every case (a group per case takes minutes)."""

    alert: str
    series: str  # the signal's input series (its labels)
    healthy: Healthy
    guard: Callable[[str, bool], list[dict[str, str]]]  # (service, traffic or not) -> the guard's series
    cases: tuple[Case, ...]


def rate_series(name: str, per_second: float) -> dict[str, str]:
    return {"series": name, "values": f"{per_second:g}+0x{POINTS - 1}"}


def counter_series(name: str, per_second: float) -> dict[str, str]:
    return {"series": name, "values": f"0+{per_second * 15:g}x{POINTS - 1}"}


def llm_calls(service: str, traffic: bool) -> list[dict[str, str]]:
    per_second = 0.7 if traffic else 0.01
    return [rate_series(f'service:gen_ai_client_operations:rate1m{{service="{service}"}}', per_second)]


def answers(service: str, traffic: bool) -> list[dict[str, str]]:
    per_second = 0.7 if traffic else 0.01
    return [counter_series(f'rag_chat_requests_total{{service="{service}",status="ok"}}', per_second)]


SUITES = (
    SignalTests(
        alert="LatencyMetricAnomaly",
        series='service:http_request_duration_seconds:p90_rate1m{service="SERVICE"}',
        # rag_api's p90 on the native lab: 75 ms, wandering with the machine's load.
        healthy=Healthy(0.075, 0.008, 0.008, 3),
        guard=lambda service, traffic: [
            rate_series(f'service:http_request_duration_seconds_count:rate1m{{service="{service}"}}', 1)
        ],
        cases=(
            Case("Healthy wave and noise: silent for three hours.", None),
            Case(
                "p90 up by 60 % for good (75 to 120 ms): a level shift.",
                after(FAULT_AT, lambda m, v: v * 1.6),
                fires="level_shift",
            ),
            Case(
                "The p90 halves for good (warm caches): an improvement, silent.",
                after(FAULT_AT, lambda m, v: v * 0.5),
            ),
            Case(
                "ml_api's 2 ms p90, +100 ms for 5 minutes: fires, resolves within 2 minutes of its end (the "
                "recovery's fitted line is no ramp to page for).",
                lambda i, v: 0.002 + (v - 0.075) / 20 + (0.1 if FAULT_AT <= i < FAULT_AT + 20 else 0),
                fires="level_shift",
                resolved_at=7,
            ),
            Case(
                "A young lab whose first 90 s answer in 2 s (cold caches): silent from its start.",
                lambda i, v: 2.0 if i < 6 else v,
                silent_from=0,
            ),
            Case(
                "A young lab whose first 2 minutes answer in 20 ms (no load yet): silent from its start.",
                lambda i, v: 0.02 if i < 8 else v,
                silent_from=0,
            ),
        ),
    ),
    SignalTests(
        alert="RequestRateMetricAnomaly",
        series='service:http_requests:rate1m{service="SERVICE"}',
        # The native lab's background traffic on ml_api.
        healthy=Healthy(1.2, 0.1, 0.1, 3),
        guard=lambda service, traffic: [],
        cases=(
            Case("Healthy wave and noise: silent for three hours.", None),
            Case(
                "Normal bursts, 3.5 times the traffic for 4 minutes every half hour (load tests): silent.",
                lambda i, v: v * 3.5 if i * STEP_MIN > 15 and i * STEP_MIN % 30 < 4 else v,
            ),
            Case(
                "A storm: 8 times the traffic for 3 minutes fires a spike.",
                after(FAULT_AT, lambda m, v: v * 8 if m < 3 else v),
                fires="spike",
            ),
            Case("All traffic stops: a drop.", after(FAULT_AT, lambda m, v: 0.0), fires="drop"),
            Case(
                "A load test starts (x3.5 for good): a level shift under TRAFFIC_FACTOR, silent.",
                after(FAULT_AT, lambda m, v: v * 3.5),
            ),
            Case(
                "Slow growth to 6 times the traffic over 50 minutes: the baseline follows, silent.",
                after(FAULT_AT, lambda m, v: v * (1 + 5 * min(m / 50, 1.0))),
            ),
        ),
    ),
    SignalTests(
        alert="TokenUsageMetricAnomaly",
        series='service:gen_ai_client_token_usage_input:mean_rate1m{service="SERVICE"}',
        healthy=Healthy(480, 20, 15, 4),
        guard=llm_calls,
        cases=(
            Case("Healthy wave and noise: silent for three hours.", None),
            Case(
                "token_inflation factor 2 (under LLMTokenUsageHigh's 4000): a level shift.",
                after(FAULT_AT, lambda m, v: v * 2),
                fires="level_shift",
            ),
            Case(
                "One minute of 1500-token prompts: a spike.",
                after(FAULT_AT, lambda m, v: 1500 if m < 1 else v),
                fires="spike",
            ),
            Case(
                "Prompts growing by 60 tokens a minute (capped at 2000): a ramp within 5 minutes.",
                after(FAULT_AT, lambda m, v: v + min(60 * m, 1500)),
                fires="ramp",
                by=5,
            ),
            Case(
                "The same level shift with under one LLM call a minute: silent.",
                after(FAULT_AT, lambda m, v: v * 2),
                traffic=False,
            ),
        ),
    ),
    SignalTests(
        alert="CostMetricAnomaly",
        series='service:llm_cost_per_request_dollars:ratio_rate1m{service="SERVICE"}',
        healthy=Healthy(0.00036, 0.00002, 0.00001, 3),
        guard=answers,
        cases=(
            Case("Healthy wave and noise: silent for three hours.", None),
            Case(
                "token_inflation factor 2: answers cost twice as much (under LLMCostPerRequestHigh).",
                after(FAULT_AT, lambda m, v: v * 2),
                fires="level_shift",
            ),
            Case(
                "One minute of $0.002 answers: a spike.",
                after(FAULT_AT, lambda m, v: 0.002 if m < 1 else v),
                fires="spike",
            ),
            Case(
                "Answers costing $0.00005 more every minute: a ramp within 5 minutes.",
                after(FAULT_AT, lambda m, v: v + min(0.00005 * m, 0.003)),
                fires="ramp",
                by=5,
            ),
            Case(
                "The same level shift with under one answer a minute: silent.",
                after(FAULT_AT, lambda m, v: v * 2),
                traffic=False,
            ),
        ),
    ),
    SignalTests(
        alert="EvaluationBacklogMetricAnomaly",
        series='llm_evaluation_queue_depth{service="SERVICE",instance="127.0.0.1:8001",job="rag-api"}',
        # A few answers queued now and then, and a burst to ~8 for two minutes every 40 minutes.
        healthy=Healthy(1.5, 0.5, 1.5, 0, burst_every=40, burst_len=2, burst_factor=5, integer=True),
        guard=answers,
        cases=(
            Case("Healthy queue, its small bursts included: silent for three hours.", None),
            Case(
                "40 answers queued for a minute (under LLMEvaluationBacklog's 50): a spike.",
                after(FAULT_AT, lambda m, v: 40 if m < 1 else v),
                fires="spike",
            ),
            Case(
                "The judge falls behind by 25 answers for good: a level shift.",
                after(FAULT_AT, lambda m, v: v + 25),
                fires="level_shift",
            ),
            Case(
                "The queue growing by 6 answers a minute (capped at 45): a ramp within 5 minutes.",
                after(FAULT_AT, lambda m, v: v + min(6 * m, 43)),
                fires="ramp",
                by=5,
            ),
            Case(
                "The same level shift with under one answer a minute: silent.",
                after(FAULT_AT, lambda m, v: v + 25),
                traffic=False,
            ),
        ),
    ),
)


# Alerts with a case of exact labels and annotations here (LatencyMetricAnomaly has its own in
# anomaly_test.yml), the service it runs on, and the types firing then with their scores (read off promtool).
EXACT_SERVICE = {
    "RequestRateMetricAnomaly": "ml_api",
    "TokenUsageMetricAnomaly": "rag_api",
    "CostMetricAnomaly": "rag_api",
    "EvaluationBacklogMetricAnomaly": "rag_api",
}
EXACT_SCORES: dict[str, list[tuple[str, float]]] = {
    "RequestRateMetricAnomaly": [("level_shift", 0.95), ("spike", 0.92)],
    "TokenUsageMetricAnomaly": [("level_shift", 0.73), ("ramp", 0.80), ("spike", 0.65)],
    "CostMetricAnomaly": [("level_shift", 0.73), ("ramp", 0.80), ("spike", 0.65)],
    "EvaluationBacklogMetricAnomaly": [("level_shift", 0.62), ("ramp", 0.69)],
}


def firing(alert: str, service: str, anomaly_type: str) -> str:
    matchers = f'alertname="{alert}", service="{service}", alertstate="firing", anomaly_type="{anomaly_type}"'
    return f"ALERTS{{{matchers}}}"


def checks(alert: str, service: str, case: Case) -> list[dict]:
    any_state = f'ALERTS{{alertname="{alert}", service="{service}"}}'
    if not case.fires:
        # Never pending nor firing from `silent_from` to the end.
        window = f"{180 - case.silent_from}m"
        return [{"expr": f"count_over_time({any_state}[{window}])", "eval_time": "180m", "exp_samples": []}]
    fault_min = FAULT_AT * STEP_MIN
    # Silent until the fault, then firing with the intended type at some point within `by` minutes (a
    # one-minute spike has resolved again by then).
    firing_now = f'count(ALERTS{{alertname="{alert}", service="{service}", alertstate="firing"}})'
    resolved = [{"expr": firing_now, "eval_time": f"{fault_min + case.resolved_at:g}m", "exp_samples": []}]
    return (resolved if case.resolved_at else []) + [
        {
            "expr": f"count_over_time({any_state}[100m])",
            "eval_time": f"{fault_min - 1:g}m",
            "exp_samples": [],
        },
        {
            "expr": f"count(max_over_time({firing(alert, service, case.fires)}[{case.by}m]))",
            "eval_time": f"{fault_min + case.by:g}m",
            "exp_samples": [{"value": 1}],
        },
    ]


def test_group(suite: SignalTests) -> dict:
    rng = random.Random(f"{SEED}:{suite.alert}")  # a suite's series do not change with the others
    series, tests, names = [], [], []
    for n, case in enumerate(suite.cases, 1):
        service = f"case{n}"
        series += case_series(suite, case, service, rng)
        tests += checks(suite.alert, service, case)
        names.append(f"{service}: {case.comment}")
    return {
        "name": f"{suite.alert}. " + " ".join(names),
        "interval": "15s",
        "input_series": series,
        "alert_rule_test": [silent_before_the_faults(suite.alert)],
        "promql_expr_test": tests,
    }


def case_series(suite: SignalTests, case: Case, service: str, rng: random.Random) -> list[dict[str, str]]:
    healthy = suite.healthy.values(rng)
    values = [case.shape(i, v) if case.shape else v for i, v in enumerate(healthy)]
    text = suite.healthy.text(values)
    return [
        {"series": suite.series.replace("SERVICE", service), "values": text},
        *suite.guard(service, case.traffic),
    ]


def silent_before_the_faults(alert: str) -> dict:
    return {"eval_time": f"{FAULT_AT * STEP_MIN - 1:g}m", "alertname": alert, "exp_alerts": []}


def exact_group(suite: SignalTests, service: str) -> dict:
    """The suite's level shift (else its first firing case) on a real service, with the alerts' exact labels
    and annotations two minutes after the fault (every alert of the contract has such a case:
    tests/prometheus/test_prometheus_config.py)."""
    firing = [c for c in suite.cases if c.fires]
    case = next((c for c in firing if c.fires == "level_shift"), firing[0])
    at = FAULT_AT * STEP_MIN + 2
    rule = alert_rules()[suite.alert]
    rng = random.Random(f"{SEED}:{suite.alert}:exact")
    expected = [
        {"exp_labels": {**rule["labels"], "anomaly_type": anomaly_type, "service": service},
         "exp_annotations": annotations(rule["annotations"], service, anomaly_type, score)}
        for anomaly_type, score in EXACT_SCORES[suite.alert]
    ]  # fmt: skip
    return {
        "name": f"{suite.alert}, exact labels and annotations: {case.comment}",
        "interval": "15s",
        "input_series": case_series(suite, case, service, rng),
        "alert_rule_test": [
            silent_before_the_faults(suite.alert),
            {"eval_time": f"{at:g}m", "alertname": suite.alert, "exp_alerts": expected},
        ],
    }


def alert_rules() -> dict[str, dict]:
    groups = yaml.safe_load((HERE.parent / "rules" / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def annotations(templates: dict[str, str], service: str, anomaly_type: str, score: float) -> dict[str, str]:
    """The rule's annotation templates as Prometheus renders them for one alert."""
    values = {
        "{{ $labels.service }}": service,
        "{{ $labels.anomaly_type }}": anomaly_type,
        '{{ printf "%.2f" $value }}': f"{score:.2f}",
    }
    out = {}
    for key, text in templates.items():
        for template, value in values.items():
            text = text.replace(template, value)
        out[key] = text
    return out


def render() -> str:
    anomaly = yaml.safe_load((HERE.parent / "rules" / "anomaly.yml").read_text(encoding="utf-8"))
    order = [group["name"] for group in anomaly["groups"]] + ["anomaly"]
    doc = {
        "rule_files": ["../rules/anomaly.yml", "../rules/alerts.yml"],
        "evaluation_interval": "15s",
        # The recording groups first, then the alerts (as in anomaly_test.yml).
        "group_eval_order": order,
        "tests": [test_group(suite) for suite in SUITES]
        + [exact_group(suite, service) for suite in SUITES if (service := EXACT_SERVICE.get(suite.alert))],
    }
    header = (
        "# GENERATED by prometheus/tests/make_anomaly_signals_test.py (seeded); edit it, then run it.\n"
        + "".join(f"# {line}\n" if line else "#\n" for line in (__doc__ or "").strip().splitlines()[1:])
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUT}\n")
