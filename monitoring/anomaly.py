"""Anomaly detection inside Prometheus: the signals, the windows per profile and the rules, in one place.

`render_rules(profile)` renders the recording rules of prometheus/rules/anomaly.yml; `score_expr(...)` gives
the same score as ONE self-contained PromQL expression over any input series (what benchmarks.anomaly runs
on NAB data with a real Prometheus). Both are built from the same stage templates below, so the benchmark
grades the rules' own maths.

How the score is made, per signal `x` (one series per service):
- baseline: the median of `x` over a `baseline` window that ends `gap` ago (robust: a spike or a short outage
  in the window does not move it; the gap keeps a ramp or a shift being tested out of its own reference),
  sampled every `resolution`;
- spread: a robust standard deviation, the 5 %-95 % range / 3.29 (exact with quantile_over_time, unlike a MAD,
  whose inner median would move with every subquery step), floored at `rel_floor` x |baseline| and at the
  signal's `abs_floor`, so a flat series does not turn noise into infinite z-scores;
- bands: baseline ± K_BAND x spread (what a dashboard overlays);
- z-scores per anomaly type: spike (x above the baseline), drop (below), level shift (the mean of the last
  `level` window away from the baseline, either way), ramp (the linear-fit change over the last `ramp`
  window, in spreads); with `directional` (production, nab) a level shift counts only when the level also
  lies beyond every level of the baseline day in the direction it moved, and a ramp only while it leads away
  from the baseline (a recovery, or wandering inside the day's range, is no news); `long_shift` (profiles
  with `long_level`): the 2-hour mean, directional alike, in robust spreads of 2-hour means, its k raised
  by the square root of the series' persistence (a wandering series' long mean moves far on routine days);
  their calibration (below) reads the ungated z, so routine excursions that repeat still raise the bar;
  `extreme` (profiles with `history`): the value beyond every value of the last week, in that week's range
  (5 % of it scores 0.5, the tolerance of NAB's HTM detector for its "spatial" anomalies);
- score per type: z / (z + k_type) in [0, 1): 0.5 exactly when z = k_type, so ONE alert threshold
  (ALERT_SCORE = 0.5) means "k spreads" for every type; `anomaly:score` is the max over the types;
- seasonal (profiles with `seasonal_offset`): the level against the level a day earlier, in robust spreads of
  that day-over-day change; with `weekly_offset` also a week earlier, the smaller z counting (weekends);
- calibration (profiles with `calibration`): each type's z counts against the larger of k_type and that
  type's own highest z over the `calibration` window ending `gap` ago, score z / (z + max(k, history)): a
  series whose normal wandering or bursts reach 8 spreads every day needs more than 8 to score 0.5, a quiet
  one still needs k. One alert threshold then ranks events of very different series alike (what a benchmark
  that picks one threshold for every series rewards);
- detection: the alert's rising edge, the score where it reaches ALERT_SCORE after a whole `hold` window
  below it. An alert fires once per excursion, not once per evaluation; this series is the event stream a
  benchmark grades. With calibration its value is the novelty: z / (z + the type's highest z of the last
  day, at least k / 2), in [0.5, 1), so detections that barely beat their own day rank below those on a
  quiet series.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import yaml

ALERT_SCORE = 0.5  # score at which an anomaly alert fires: z = k of the anomaly type
TAIL = 0.05  # share of the baseline window on each side left out of the spread (outliers, anomalies)
RANGE_TO_SIGMA = 3.29  # width of the 5 %-95 % range of a normal distribution in standard deviations
SEASONAL_SPREAD_FLOOR = 0.5  # a day-over-day change counts in spreads of at least half the signal's spread
K_BAND = 3.0  # dashboard band half-width in spreads

# Robust z (in spreads) at which each anomaly type scores ALERT_SCORE. A single point needs more evidence than
# a mean of several points (the level window averages noise away) or a fitted trend over many.
# A jump is a level against the last hour, in spreads of point-to-point changes: a single step's evidence.
K_TYPE: dict[str, float] = {
    "spike": 6.0,
    "drop": 6.0,
    "level_shift": 4.0,
    "ramp": 4.0,
    "seasonal": 4.0,
    "jump": 6.0,
    "long_shift": 4.0,
    # A value beyond every value of the `history` window by this share of that window's range (NAB's HTM
    # detector flags such "spatial" anomalies with the same 5 % tolerance): z here is in history ranges.
    "extreme": 0.05,
}
ANOMALY_TYPES = tuple(K_TYPE)
# only with `seasonal_offset` / `local` / `long_level` / `history`
OPTIONAL_TYPES = ("seasonal", "jump", "long_shift", "extreme")
NOVELTY_FLOOR = 0.5  # a detection's value counts z against at least this share of k (see novelty())
STEP_Q = 0.9  # quantile of |point-to-point change| taken as its scale ...
STEP_Q_SIGMA = 1.645  # ... which is that many standard deviations of a normal change
STEP_SPREAD_FLOOR = 0.1  # a change counts in at least a tenth of the signal's spread


@dataclass(frozen=True)
class Windows:
    """PromQL durations of one profile. `resolution` is the subquery step (the signal's sampling period)."""

    resolution: str
    baseline: str
    level: str
    ramp: str
    hold: str
    rel_floor: float  # spread floor as a share of |baseline|
    interval: str  # rule evaluation interval of the anomaly groups
    gap: str  # the baseline window ends this long ago: what is being tested is not part of its own reference
    seasonal_offset: str | None = None  # e.g. "1d": also compare with the same time a day earlier
    # e.g. "7d": ... and with the same time a week earlier; the seasonal type takes the smaller z
    weekly_offset: str | None = None
    # each z also counts against its own highest value of this window ("26h": a day and a margin, so that a
    # routine event that recurs daily, a little late or early, is still inside the window that judges it)
    calibration: str | None = None
    local: str | None = None  # "jump" type: the level against this short window just before it ("1h")
    # level_shift and ramp count only a move away from the baseline to a level the baseline day did not reach
    # (a recovery, or routine wandering inside the day's range, is no news)
    directional: bool = False
    long_level: str | None = None  # "long_shift" type: the mean of this longer window ("2h"), directional
    history: str | None = None  # "extreme" type: a value beyond every value of this window ("7d")


PRODUCTION = Windows(
    resolution="5m",
    baseline="1d",
    level="30m",
    ramp="6h",
    hold="6h",
    rel_floor=0.05,
    interval="1m",
    gap="1h",
    seasonal_offset="1d",
    weekly_offset="7d",
    calibration="26h",
    local="1h",
    directional=True,
    long_level="2h",
    history="7d",
)
PROFILES: dict[str, Windows] = {
    # Minutes: a lab run shows a fault within two minutes and recovers within ten.
    "lab": Windows(
        resolution="15s",
        baseline="10m",
        level="1m",
        ramp="5m",
        hold="10m",
        rel_floor=0.1,
        interval="15s",
        gap="5m",
    ),
    # Hours and days, with the baseline of the same hour yesterday as a second opinion (daily seasonality),
    # each z calibrated against its own last day.
    "production": PRODUCTION,
    # 5-minute data (the Numenta Anomaly Benchmark): the production windows, evaluated at the data's own
    # step, with a baseline ending 30 minutes ago and a spread floor that lets percent-scale and counter-scale
    # series alike score. Two hours of hold: one detection per excursion, and NAB's threshold sweep drops the
    # weak ones by their value (a longer hold also silenced the real anomaly after a routine excursion).
    "nab": replace(PRODUCTION, hold="2h", rel_floor=0.01, interval="5m", gap="30m"),
}


@dataclass(frozen=True)
class Signal:
    """One watched series per service. `expr` must return at most one series per `service`."""

    name: str  # anomaly_name label value (bounded: one per signal)
    expr: str
    guard: str  # traffic guard: the alert needs this to return a series for the service
    abs_floor: float  # smallest spread worth a page, in the signal's unit
    types: tuple[str, ...]  # anomaly types this signal alerts on
    static_alerts: tuple[str, ...] = ()  # static alerts of the same signal: they inhibit the anomaly alert
    alert: str = ""  # name of its `...MetricAnomaly` alert (monitoring/alerts/anomaly.py); "" = rules only
    dashboard: str = "pipeline-health"
    trigger: str = ""  # docs: how to make its anomaly alert fire in the lab
    description: str = ""
    unit_human: str = "humanize"  # Prometheus template function for the value


LATENCY_TYPES = ("spike", "level_shift", "ramp")
REQUEST_GUARD = "service:http_requests:rate1m > 0.05"
ANSWER_GUARD = 'sum by (service) (rate(rag_chat_requests_total{status="ok"}[1m])) > 0.05'
LLM_CALL_GUARD = "service:gen_ai_client_operations:rate1m > 0.05"
# Traffic changes by more than this factor (either way) before its anomaly alert speaks: starting a load test
# (4 Locust users quadruple the lab's background rate) or ending one is not news; a stop or a storm is.
TRAFFIC_FACTOR = 5


def traffic_guard(name: str) -> str:
    """The service had traffic in the baseline (a lab with none stays silent) and the rate now is more than
    TRAFFIC_FACTOR times the baseline median, or less than its 1/TRAFFIC_FACTOR (a drop to zero)."""
    x = f'anomaly:signal{{anomaly_name="{name}"}}'
    median = f'anomaly:signal:median{{anomaly_name="{name}"}}'
    return (
        f"{median} > 0.05"
        f" and on (service) ({x} > {TRAFFIC_FACTOR} * {median} or {x} < {median} / {TRAFFIC_FACTOR})"
    )


# The p90 must also be this many times its baseline median, and above it by the signal's spread floor: on
# a noisy service (rag_api's p90 wanders by +-20 % with the machine's load) a fitted ramp over 5 minutes can
# reach 4 spreads while the latency is no higher than before; once a fault ends, the fitted line of the
# recovery is a "ramp" for 5 minutes (ml_api's p90 of ~2 ms is 1.2 times its median on noise alone, hence the
# floor); and a latency that improves (a restarted service's warm caches) is not news.
LATENCY_EFFECT = 1.2
LATENCY_FLOOR = 0.005  # seconds: the latency signal's smallest spread


def above_baseline(name: str, factor: float, floor: float) -> str:
    matcher = f'{{anomaly_name="{name}"}}'
    x, median = f"anomaly:signal{matcher}", f"anomaly:signal:median{matcher}"
    return f"{x} > {factor} * {median} and on (service) {x} - {median} > {floor}"


SIGNALS: tuple[Signal, ...] = (
    Signal(
        name="latency_p90",
        expr="service:http_request_duration_seconds:p90_rate1m",
        guard=(
            "service:http_request_duration_seconds_count:rate1m > 0.05"
            f" and on (service) ({above_baseline('latency_p90', LATENCY_EFFECT, LATENCY_FLOOR)})"
        ),
        abs_floor=LATENCY_FLOOR,
        types=LATENCY_TYPES,
        static_alerts=("MLHighLatencyP90", "MLHighLatencyP99", "LLMHighLatency"),
        alert="LatencyMetricAnomaly",
        trigger="ml_api `latency` fault under the static threshold (`delay_ms` 100) after 15 quiet minutes",
        description="p90 latency of the model-serving endpoints",
        unit_human="humanizeDuration",
    ),
    Signal(
        name="request_rate",
        expr="service:http_requests:rate1m",
        guard=traffic_guard("request_rate"),
        abs_floor=0.05,
        # No ramp: traffic that grows slowly is growth, and the baseline follows it.
        types=("spike", "drop", "level_shift"),
        alert="RequestRateMetricAnomaly",
        trigger="stop all traffic to a service that had some (`labctl up --no-traffic` lab: stop your load)",
        description="requests per second (probes and admin calls excluded)",
    ),
    Signal(
        name="error_ratio",
        expr="service:http_requests_5xx:ratio_rate1m",
        guard=REQUEST_GUARD,
        abs_floor=0.01,
        types=("spike", "level_shift", "ramp"),
        static_alerts=("MLHighErrorRatio",),
        alert="ErrorRatioMetricAnomaly",
        trigger="ml_api `errors` fault with `rate` 0.04 (under `MLHighErrorRatio`'s 0.05)",
        description="share of 5xx answers",
        unit_human="humanizePercentage",
    ),
    # Tokens and cost per call / per answer, not per second: more traffic is not a token anomaly (the
    # request rate speaks for it); a prompt that grows is.
    Signal(
        name="tokens_per_call",
        expr="service:gen_ai_client_token_usage_input:mean_rate1m",
        guard=LLM_CALL_GUARD,
        abs_floor=20.0,
        types=("spike", "level_shift", "ramp"),
        static_alerts=("LLMTokenUsageHigh",),
        alert="TokenUsageMetricAnomaly",
        trigger="rag_api `token_inflation` fault, `factor` 2, every tenant (under `LLMTokenUsageHigh`)",
        description="mean input tokens per LLM call",
    ),
    Signal(
        name="cost_per_answer",
        expr="service:llm_cost_per_request_dollars:ratio_rate1m",
        guard=ANSWER_GUARD,
        abs_floor=1e-5,
        types=("spike", "level_shift", "ramp"),
        static_alerts=("LLMCostPerRequestHigh", "LLMBudgetBurn"),
        alert="CostMetricAnomaly",
        trigger="rag_api `token_inflation` fault, `factor` 2, every tenant (under `LLMCostPerRequestHigh`)",
        description="LLM spend per answered /chat request (generation and judge)",
    ),
    Signal(
        name="evaluation_backlog",
        expr="max by (service) (llm_evaluation_queue_depth)",
        guard=ANSWER_GUARD,
        # Healthy traffic leaves a few answers queued now and then: 5 answers of spread keeps those bursts
        # quiet, and a spike still has to reach 30 (6 spreads), under LLMEvaluationBacklog's 50.
        abs_floor=5.0,
        types=("spike", "level_shift", "ramp"),
        static_alerts=("LLMEvaluationBacklog",),
        alert="EvaluationBacklogMetricAnomaly",
        trigger="a burst of `/chat` faster than the judge scores (e.g. `simulations traffic --users 20`)",
        description="answers waiting for their quality evaluation",
    ),
)
SIGNALS_BY_NAME = {s.name: s for s in SIGNALS}


@dataclass
class Stages:
    """PromQL of every stage for one input. A stage refers to earlier ones through `ref`: the recorded series
    (rules) or the parenthesised expression itself (inline: one expression for the benchmark)."""

    windows: Windows
    source: str  # the input series (a selector or an expression)
    abs_floor: float
    inline: bool
    name: str = ""  # anomaly_name of the recorded series
    exprs: dict[str, str] = field(default_factory=dict)

    def ref(self, record: str, anomaly_type: str = "") -> str:
        if self.inline:
            return f"({self.exprs[type_key(record, anomaly_type)]})"
        matchers = f'anomaly_name="{self.name}"' + (
            f', anomaly_type="{anomaly_type}"' if anomaly_type else ""
        )
        return f"{record}{{{matchers}}}"

    def add(self, record: str, expr: str, anomaly_type: str = "") -> None:
        self.exprs[type_key(record, anomaly_type)] = expr


def type_key(record: str, anomaly_type: str) -> str:
    return f"{record}/{anomaly_type}" if anomaly_type else record


def over(func: str, series: str, window: str, resolution: str, offset: str = "", arg: str = "") -> str:
    """func(arg, (series)[window:resolution] offset ...): a subquery, so raw and recorded inputs act alike."""
    first = f"{arg}, " if arg else ""
    shift = f" offset {offset}" if offset else ""
    return f"{func}({first}({series})[{window}:{resolution}]{shift})"


def larger(parts: dict[str, str]) -> str:
    """Element-wise max of vectors with the same labels, each written once (an `or` of tagged copies, then
    max): the inline expression stays linear in size."""
    tagged = " or ".join(f'label_replace({e}, "part", "{tag}", "", "")' for tag, e in parts.items())
    return f"max without (part) ({tagged})"


def smaller(parts: dict[str, str]) -> str:
    tagged = " or ".join(f'label_replace({e}, "part", "{tag}", "", "")' for tag, e in parts.items())
    return f"min without (part) ({tagged})"


def robust_sigma(series: str, w: Windows) -> str:
    """Standard deviation from the 5 %-95 % range of the baseline window (3.29 sigma for a normal law): it
    ignores up to 5 % of outliers, and unlike the IQR it does not shrink to 0 on a series that is flat most of
    the time with regular bursts (the bursts are its normal range)."""
    high = over("quantile_over_time", series, w.baseline, w.resolution, offset=w.gap, arg=str(1 - TAIL))
    low = over("quantile_over_time", series, w.baseline, w.resolution, offset=w.gap, arg=str(TAIL))
    return f"({high} - {low}) / {RANGE_TO_SIGMA}"


def build_stages(stages: Stages) -> Stages:
    w = stages.windows
    stages.add("anomaly:signal", stages.source)
    x = stages.ref("anomaly:signal")
    stages.add(
        "anomaly:signal:median",
        over("quantile_over_time", x, w.baseline, w.resolution, offset=w.gap, arg="0.5"),
    )
    median = stages.ref("anomaly:signal:median")
    relative = f"abs({median}) * {w.rel_floor}"
    stages.add(
        "anomaly:signal:spread",
        f"clamp_min({larger({'range': robust_sigma(x, w), 'relative': relative})}, {stages.abs_floor})",
    )
    spread = stages.ref("anomaly:signal:spread")
    stages.add("anomaly:signal:band_upper", f"{median} + {K_BAND} * {spread}")
    stages.add("anomaly:signal:band_lower", f"{median} - {K_BAND} * {spread}")
    level = over("avg_over_time", x, w.level, w.resolution)
    # deriv is per second; times the window length = the change the fitted line makes over the ramp window.
    ramp = f"{over('deriv', x, w.ramp, w.resolution)} * {seconds(w.ramp)}"
    z = {
        "spike": f"({x} - {median}) / {spread}",
        "drop": f"({median} - {x}) / {spread}",
        "level_shift": f"abs({level} - {median}) / {spread}",
        "ramp": f"abs({ramp}) / {spread}",
    }
    reach: dict[str, str] = {}  # the z a gated type's calibration reads: how far routine days reached
    if w.directional:
        reach["level_shift"] = z["level_shift"]
        z["level_shift"] = f"{away_from_baseline(level, median, w)} / {spread}"
        # a ramp counts only while it leads away from the baseline: the climb back from a dip is a recovery
        z["ramp"] = f"clamp_min({ramp} * sgn({level} - {median}), 0) / {spread}"
    types = [t for t in ANOMALY_TYPES if t not in OPTIONAL_TYPES]
    if w.long_level:
        z["long_shift"], reach["long_shift"] = long_shift_z(stages, median, spread)
        types.append("long_shift")
    if w.local:
        z["jump"] = jump_z(stages, level, spread)
        types.append("jump")
    if w.history:
        z["extreme"] = extreme_z(stages, spread)
        types.append("extreme")
    if w.seasonal_offset:
        z["seasonal"] = seasonal_z(stages, level, spread)
        types.append("seasonal")
    for anomaly_type in types:
        if w.calibration and anomaly_type in reach:
            stages.add("anomaly:reach_by_type", f"clamp_min({reach[anomaly_type]}, 0)", anomaly_type)
        stages.add("anomaly:score_by_type", type_score(stages, anomaly_type, z[anomaly_type]), anomaly_type)
    stages.add("anomaly:score", best_of_types(stages, "anomaly:score_by_type", types))
    score = stages.ref("anomaly:score")
    previous = over("max_over_time", score, w.hold, w.resolution, offset=w.resolution)
    # The alert's rising edge: the score crosses ALERT_SCORE after a whole `hold` window below it. Absent
    # otherwise (absent = no event); its value (>= ALERT_SCORE) says how far the signal jumped.
    edge = f"({score} >= {ALERT_SCORE}) unless ({previous} >= {ALERT_SCORE})"
    if w.calibration:
        for anomaly_type in types:
            stages.add("anomaly:novelty_by_type", novelty(stages, anomaly_type), anomaly_type)
        stages.add("anomaly:novelty", best_of_types(stages, "anomaly:novelty_by_type", types))
        edge = f"{stages.ref('anomaly:novelty')} and ({edge})"
    stages.add("anomaly:detection", edge)
    return stages


def best_of_types(stages: Stages, record: str, types: list[str]) -> str:
    if stages.inline:
        return larger({t: stages.ref(record, t) for t in types})
    return f'max without (anomaly_type) ({record}{{anomaly_name="{stages.name}"}})'


def novelty(stages: Stages, anomaly_type: str) -> str:
    """How far a type that scores ALERT_SCORE or more stands above its own last day: z / (z + the day's
    highest z, at least NOVELTY_FLOOR x k), in [0.5, 1). A detection carries it as its value, so one
    threshold over many series can drop the detections that barely beat their day (a benchmark's sweep);
    the floor keeps a detection on a series quiet all day ranked by its own size (2/3 at k, not 1)."""
    w = stages.windows
    assert w.calibration
    z = stages.ref("anomaly:zscore_by_type", anomaly_type)
    usual = f"clamp_min({usual_z(stages, anomaly_type)}, {NOVELTY_FLOOR * K_TYPE[anomaly_type]:g})"
    score = stages.ref("anomaly:score_by_type", anomaly_type)
    return f"({z} / ({z} + {usual})) and ({score} >= {ALERT_SCORE})"


def seasonal_z(stages: Stages, level: str, spread: str) -> str:
    """Daily seasonality: the level now against the level at the same time a day earlier, in robust spreads
    of that day-over-day difference (a daily pattern repeats, so its difference stays small) and at least
    SEASONAL_SPREAD_FLOOR of the signal's spread (a change small next to it is no news). With
    `weekly_offset`, the same against a week earlier, and the smaller z counts: a Saturday unlike Friday but
    like last Saturday is no news (without a week of history, the daily z alone)."""
    w, x = stages.windows, stages.ref("anomaly:signal")
    assert w.seasonal_offset
    offsets = {"seasonal_change": w.seasonal_offset} | (
        {"weekly_change": w.weekly_offset} if w.weekly_offset else {}
    )
    zs = {}
    for record, offset in offsets.items():
        shifted = over("avg_over_time", x, w.level, w.resolution, offset=offset)
        stages.add(f"anomaly:signal:{record}", f"{level} - {shifted}")
        change = stages.ref(f"anomaly:signal:{record}")
        c_spread = larger(
            {"change": robust_sigma(change, w), "signal": f"{spread} * {SEASONAL_SPREAD_FLOOR}"}
        )
        zs[record] = f"abs({change}) / {c_spread}"
    return smaller(zs) if len(zs) > 1 else zs["seasonal_change"]


def away_from_baseline(level: str, median: str, w: Windows) -> str:
    """|level - median| when the level moves away from the median AND beyond every level of the baseline
    day (in the same direction), else 0: a return from an earlier excursion lies inside the day's range."""
    highest = over("max_over_time", level, w.baseline, w.resolution, offset=w.gap)
    lowest = over("min_over_time", level, w.baseline, w.resolution, offset=w.gap)
    up = f"clamp_min({level} - {median}, 0) * ({level} > bool {highest})"
    down = f"clamp_min({median} - {level}, 0) * ({level} < bool {lowest})"
    return f"({up} + {down})"


def long_shift_z(stages: Stages, median: str, spread: str) -> tuple[str, str]:
    """The `long_level` mean, directional (see away_from_baseline), in robust spreads of that mean over the
    baseline day, divided by the square root of the series' persistence: the spread of the long means
    against what white noise would give (spread / sqrt(points)), at least 1. A strongly autocorrelated series
    wanders, its long mean moves far on routine days; its few independent long means a day make its own
    day's highest z a poor guard alone, so its k grows with the persistence (up to sqrt(points)-fold).
    Returns the directional z and the ungated one (what calibration reads)."""
    w, x = stages.windows, stages.ref("anomaly:signal")
    assert w.long_level
    stages.add("anomaly:signal:long_level", over("avg_over_time", x, w.long_level, w.resolution))
    long_level = stages.ref("anomaly:signal:long_level")
    points = seconds(w.long_level) / seconds(w.resolution)
    floor = f"{spread} / {points**0.5:g}"
    stages.add("anomaly:signal:long_spread", larger({"range": robust_sigma(long_level, w), "noise": floor}))
    long_spread = stages.ref("anomaly:signal:long_spread")
    scale = f"({long_spread} * sqrt({long_spread} / ({floor})))"  # times sqrt(persistence)
    return f"{away_from_baseline(long_level, median, w)} / {scale}", f"abs({long_level} - {median}) / {scale}"


def extreme_z(stages: Stages, spread: str) -> str:
    """How far the value lies beyond the highest (or lowest) value of the `history` window, in that window's
    range (floored at the signal's spread, so a flat history still has a scale): a new extreme for the week
    is news whatever the series' shape, a burst no higher than the week's routine bursts is not."""
    w, x = stages.windows, stages.ref("anomaly:signal")
    assert w.history
    for bound, func in (("history_max", "max_over_time"), ("history_min", "min_over_time")):
        stages.add(f"anomaly:signal:{bound}", over(func, x, w.history, w.resolution, offset=w.gap))
    highest, lowest = stages.ref("anomaly:signal:history_max"), stages.ref("anomaly:signal:history_min")
    beyond = f"(clamp_min({x} - {highest}, 0) + clamp_min({lowest} - {x}, 0))"
    return f"{beyond} / {larger({'range': f'{highest} - {lowest}', 'spread': spread})}"


def jump_z(stages: Stages, level: str, spread: str) -> str:
    """The level against the median of the `local` window just before the level window, in robust standard
    deviations of the point-to-point change over the baseline window: a wandering series (a wide day-long
    spread, small steps) still shows a sudden step, a white-noise one is left to the other types."""
    w, x = stages.windows, stages.ref("anomaly:signal")
    assert w.local
    step = f"abs({over('idelta', x, f'{2 * seconds(w.resolution)}s', w.resolution)})"
    quantile = over("quantile_over_time", step, w.baseline, w.resolution, offset=w.gap, arg=str(STEP_Q))
    stages.add("anomaly:signal:step_spread", f"{quantile} / {STEP_Q_SIGMA}")
    step_spread = larger(
        {"step": stages.ref("anomaly:signal:step_spread"), "signal": f"{spread} * {STEP_SPREAD_FLOOR}"}
    )
    before = f"{seconds(w.level) + seconds(w.resolution)}s"
    local = over("quantile_over_time", x, w.local, w.resolution, offset=before, arg="0.5")
    return f"abs({level} - {local}) / {step_spread}"


def type_score(stages: Stages, anomaly_type: str, z: str) -> str:
    """z / (z + k) in [0, 1), written with z once; with calibration, k is at least the type's own highest z of
    the calibration window (ending `gap` ago, so an excursion under way is not its own reference)."""
    w, k = stages.windows, K_TYPE[anomaly_type]
    if not w.calibration:
        return f"1 - {k} / (clamp_min({z}, 0) + {k})"
    stages.add("anomaly:zscore_by_type", f"clamp_min({z}, 0)", anomaly_type)
    z = stages.ref("anomaly:zscore_by_type", anomaly_type)
    return f"{z} / ({z} + clamp_min({usual_z(stages, anomaly_type)}, {k}))"


def usual_z(stages: Stages, anomaly_type: str) -> str:
    """The type's highest z of the calibration window. A direction-aware type reads its ungated z there
    (`anomaly:reach_by_type`): its gated z is 0 at every routine excursion that repeats an earlier one, and
    would forget how far this series' routine days go."""
    w = stages.windows
    assert w.calibration
    gated = type_key("anomaly:reach_by_type", anomaly_type) in stages.exprs
    z = stages.ref("anomaly:reach_by_type" if gated else "anomaly:zscore_by_type", anomaly_type)
    return over("max_over_time", z, w.calibration, w.resolution, offset=w.gap)


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(duration[:-1]) * units[duration[-1]]


def score_expr(
    source: str, profile: str = "nab", abs_floor: float = 1e-9, stage: str = "anomaly:detection"
) -> str:
    """One self-contained PromQL expression of `stage` over `source` (the rules' maths, inlined)."""
    stages = build_stages(Stages(PROFILES[profile], source, abs_floor, inline=True))
    return stages.exprs[stage]


def signal_rules(signal: Signal, windows: Windows) -> list[dict]:
    stages = build_stages(Stages(windows, signal.expr, signal.abs_floor, inline=False, name=signal.name))
    rules = []
    for key, expr in stages.exprs.items():
        record, _, anomaly_type = key.partition("/")
        labels = {"anomaly_name": signal.name} | ({"anomaly_type": anomaly_type} if anomaly_type else {})
        rules.append({"record": record, "expr": expr, "labels": labels})
    return rules


def render_rules(profile: str = "lab") -> str:
    windows = PROFILES[profile]
    groups = [
        {
            "name": f"anomaly_{signal.name}",
            "interval": windows.interval,
            "rules": signal_rules(signal, windows),
        }
        for signal in SIGNALS
    ]
    header = (
        f"# GENERATED by monitoring/anomaly.py (profile {profile!r}); edit it, then `make generate`.\n"
        "# Anomaly scores per signal: baseline (median), robust spread (5-95 % range / 3.29), bands\n"
        "# and per-type scores in [0, 1) (0.5 = the alert threshold), the detection stream (rising edges).\n"
    )
    return header + yaml.safe_dump({"groups": groups}, sort_keys=False, width=120)
