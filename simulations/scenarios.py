"""The simulations: what each injects, which alert it expects, and the engine that runs and watches one.

A scenario starts its fault and its load, then the engine polls Prometheus, Alertmanager and the receiver
once a second until every expected alert was notified on every channel its severity routes to (or the
timeout), stops the load early once that happened, and cleans up what it injected.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from monitoring.contract import threshold
from simulations.data import drifted_tickets, feature_names, question_mix
from simulations.lab import Lab, LabError
from simulations.load import LocustRun, PacedSender
from simulations.watch import Expected, Watch, fmt

ML_PREDICT = 'endpoint=~"/predict|/predict/batch"'


def _quantile(q: float, metric: str, selector: str = "") -> str:
    sel = f"{{{selector}}}" if selector else ""
    return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{sel}[1m])))"


# Which latency alert a --delay-ms raises, highest threshold first (from the monitoring contract). A critical
# mutes the warning of its family (p99 mutes p90).
LATENCY_RULES: dict[str, list[tuple[float, Expected]]] = {
    "ml_api": [
        (threshold("MLHighLatencyP99"), Expected("MLHighLatencyP99", "ml_api", "ML p99 latency (s)",
                       _quantile(0.99, "ml_http_request_duration_seconds", ML_PREDICT))),
        (threshold("MLHighLatencyP90"), Expected("MLHighLatencyP90", "ml_api", "ML p90 latency (s)",
                        _quantile(0.9, "ml_http_request_duration_seconds", ML_PREDICT))),
    ],
    "rag_api": [
        (threshold("LLMHighLatency"), Expected("LLMHighLatency", "rag_api", "/chat p90 latency (s)",
                       _quantile(0.9, "rag_http_request_duration_seconds", 'endpoint="/chat"'))),
    ],
}  # fmt: skip


class Scenario:
    """Base: subclasses set `name`, `services`, `expected`, `duration` and implement start/stop/cleanup."""

    name = ""
    services: tuple[str, ...] = ()
    expected: list[Expected]
    duration: float = 60.0  # how long the injection lasts at most (the progress bar's length without waiting)

    def start(self, lab: Lab, hold: float) -> None:
        """Inject the fault (lasting at least `hold` seconds) and start the load."""
        raise NotImplementedError

    def load_finished(self) -> bool:
        raise NotImplementedError

    def stop_load(self) -> None:
        raise NotImplementedError

    def progress(self) -> str:
        return ""

    def summary(self) -> list[str]:
        return []

    def cleanup(self, lab: Lab) -> None:
        """Undo the injection (clear the fault, reset the drift window)."""


class PacedScenario(Scenario):
    """A scenario whose load is one PacedSender of HTTP requests."""

    sender: PacedSender | None = None

    def load_finished(self) -> bool:
        return self.sender is None or self.sender.finished

    def stop_load(self) -> None:
        if self.sender is not None:
            self.sender.stop()


class SideBySide(Scenario):
    """Independent scenarios (other services, other alerts) injected at once and watched as one: `all`
    runs drift (ml_api) and attack (rag_api) together to end sooner."""

    def __init__(self, *parts: Scenario) -> None:
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.services = tuple(dict.fromkeys(s for p in parts for s in p.services))
        self.duration = max(p.duration for p in parts)

    @property
    def expected(self) -> list[Expected]:  # type: ignore[override]
        return [e for p in self.parts for e in p.expected]

    def start(self, lab: Lab, hold: float) -> None:
        for part in self.parts:
            part.start(lab, hold)

    def load_finished(self) -> bool:
        return all(p.load_finished() for p in self.parts)

    def stop_load(self) -> None:
        for part in self.parts:
            part.stop_load()

    def progress(self) -> str:
        return " | ".join(p.progress() for p in self.parts)

    def summary(self) -> list[str]:
        return [line for p in self.parts for line in p.summary()]

    def cleanup(self, lab: Lab) -> None:
        for part in self.parts:
            part.cleanup(lab)


# ------------------------------------------------------------------------------------------------ drift


class DriftScenario(PacedScenario):
    name = "drift"
    services = ("ml_api",)

    def __init__(self, *, duration: float, drift_amount: float, features: list[str], rps: float) -> None:
        self.duration = duration
        self.amount = drift_amount
        self.features = features
        self.rps = rps
        selector = f'{{feature=~"{"|".join(features)}"}}'
        # Dataset drift needs at least half of the features drifted (ml_api/drift.py, drift_share 0.5); with
        # fewer shifted, the per-feature alert is the one to expect (the dataset one mutes it otherwise).
        metric = "max feature drift score (KS)"
        query = f"max(ml_feature_drift_score{selector})"
        if len(features) / len(feature_names()) >= 0.5:
            flag = "max(ml_dataset_drift_detected)"
            self.expected = [Expected("MLDataDriftDetected", "ml_api", metric, query, signal=flag)]
        else:
            flag = f"max(ml_feature_drift_detected{selector})"
            self.expected = [Expected("MLFeatureDrift", "ml_api", metric, query, signal=flag)]
        self.sender: PacedSender | None = None

    def start(self, lab: Lab, hold: float) -> None:
        seed = (lab.model_card().get("training") or {}).get("seed", 42)
        tickets = drifted_tickets(self.features, self.amount, train_seed=int(seed))
        first = next(tickets)  # computes the reference statistics before the clock of the sender starts
        self.sender = PacedSender(
            f"{lab.urls.ml}/predict",
            itertools.chain([first], tickets),
            rps=self.rps,
            duration=self.duration,
        )
        self.sender.start()

    def progress(self) -> str:
        return f"{self.sender.sent if self.sender else 0} drifted tickets sent"

    def summary(self) -> list[str]:
        s = self.sender
        return [
            f"drift: {s.sent if s else 0} tickets to /predict at {self.rps:g}/s, {', '.join(self.features)} "
            f"shifted by {self.amount:g} reference SD (answers: {dict(s.counts) if s else {}})"
        ]

    def cleanup(self, lab: Lab) -> None:
        lab.reset_drift()


# ---------------------------------------------------------------------------------------- hallucination


class HallucinationScenario(PacedScenario):
    name = "hallucination"
    services = ("rag_api",)

    def __init__(
        self, *, num_queries: int, hallucination_rate: float, rps: float, out_of_domain_share: float
    ) -> None:
        self.num_queries = num_queries
        self.rate = hallucination_rate
        self.rps = rps
        self.ood_share = out_of_domain_share
        self.duration = num_queries / rps
        self.expected = [
            Expected(
                "LLMHallucinationHigh",
                "rag_api",
                "p90 hallucination score",
                _quantile(0.9, "llm_hallucination_score"),
            )
        ]
        self.sender: PacedSender | None = None
        self.kinds: Counter[str] = Counter()

    def _payloads(self):
        for question, ood in question_mix(self.ood_share):
            self.kinds["out-of-domain" if ood else "in-domain"] += 1
            yield {"query": question}

    def start(self, lab: Lab, hold: float) -> None:
        lab.inject("rag_api", "hallucination", self.duration + hold, rate=self.rate)
        self.sender = PacedSender(
            f"{lab.urls.rag}/chat", self._payloads(), rps=self.rps, count=self.num_queries, workers=2
        )
        self.sender.start()

    def progress(self) -> str:
        return f"{self.sender.sent if self.sender else 0}/{self.num_queries} questions sent"

    def summary(self) -> list[str]:
        s = self.sender
        return [
            f"hallucination: fault rate {self.rate:g} on rag_api; {s.sent if s else 0} questions to /chat at "
            f"{self.rps:g}/s ({dict(self.kinds)}; answers: {dict(s.counts) if s else {}})"
        ]

    def cleanup(self, lab: Lab) -> None:
        lab.clear_faults("rag_api", "hallucination")


# ---------------------------------------------------------------------------------------------- latency


def latency_expectations(delay_ms: float, services: list[str]) -> list[Expected]:
    """The alert each service's latency fault of `delay_ms` raises: the highest threshold it exceeds."""
    found = []
    for service in services:
        for seconds, expected in LATENCY_RULES[service]:
            if delay_ms / 1000.0 > seconds:
                found.append(expected)
                break
    return found


class LocustScenario(Scenario):
    """A scenario whose load is one Locust run, started after the fault is injected (`inject`)."""

    locust: LocustRun
    started = False

    def inject(self, lab: Lab, hold: float) -> None:
        """The fault, if any, lasting at least `hold` seconds."""

    def start(self, lab: Lab, hold: float) -> None:
        self.inject(lab, hold)
        self.locust.start()
        self.started = True

    def load_finished(self) -> bool:
        return self.locust.finished

    def stop_load(self) -> None:
        if self.started:
            self.locust.stop()


class LatencyScenario(LocustScenario):
    name = "latency"

    def __init__(
        self,
        *,
        duration: float,
        delay_ms: float,
        burst_size: int,
        services: list[str],
        ml_url: str,
        rag_url: str,
    ) -> None:
        self.duration = duration
        self.delay_ms = delay_ms
        self.burst_size = burst_size
        self.services = tuple(services)
        self.expected = latency_expectations(delay_ms, services)
        classes = {"ml_api": "MLUser", "rag_api": "RAGUser"}
        self.locust = LocustRun(
            [classes[s] for s in services],
            users=burst_size,
            duration=duration,
            ml_url=ml_url,
            rag_url=rag_url,
            env={"SIM_WAIT_MIN": "0.1", "SIM_WAIT_MAX": "0.5"},
        )

    def inject(self, lab: Lab, hold: float) -> None:
        for service in self.services:
            lab.inject(service, "latency", self.duration + hold, delay_ms=self.delay_ms)

    def progress(self) -> str:
        return f"Locust burst: {self.burst_size} users"

    def summary(self) -> list[str]:
        on = ", ".join(self.services)
        lines = [f"latency: +{self.delay_ms:g} ms on {on}; Locust burst of {self.burst_size} users"]
        lines += _locust_lines(self.locust)
        return lines

    def cleanup(self, lab: Lab) -> None:
        for service in self.services:
            lab.clear_faults(service, "latency")


def _locust_lines(run: LocustRun) -> list[str]:
    stats = run.stats()
    if not stats:
        tail = run.log_tail()
        return [f"  Locust left no statistics; its log:\n{tail}" if tail else "  Locust left no statistics"]
    return [
        f"  {name:<28} {s['requests']:>6.0f} requests {s['failures']:>5.0f} failures  "
        f"median {s['median_ms']:.0f} ms  p99 {s['p99_ms']:.0f} ms"
        for name, s in stats.items()
    ]


# ---------------------------------------------------------------------------------------------- traffic


class TrafficScenario(LocustScenario):
    name = "traffic"
    services = ("ml_api", "rag_api")

    def __init__(self, *, duration: float, users: int, ml_url: str, rag_url: str) -> None:
        self.duration = duration
        self.users = users
        self.expected = []
        self.locust = LocustRun(
            ["MLUser", "RAGUser"], users=users, duration=duration, ml_url=ml_url, rag_url=rag_url
        )

    def progress(self) -> str:
        return f"Locust: {self.users} healthy users"

    def summary(self) -> list[str]:
        return [
            f"traffic: {self.users} healthy Locust users for {self.duration:g}s",
            *_locust_lines(self.locust),
        ]

    @property
    def failed(self) -> bool:
        stats = self.locust.stats().get("Aggregated")
        return stats is None or stats["requests"] == 0 or stats["failures"] > 0


# ---------------------------------------------------------------------------------------------- engine


@dataclass
class Outcome:
    scenario: Scenario
    watches: list[Watch]
    injected_at: float
    also_fired: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    waited: bool = True

    @property
    def ok(self) -> bool:
        if isinstance(self.scenario, TrafficScenario):
            return not self.scenario.failed
        return not self.waited or all(w.delivered for w in self.watches)


def progress_console() -> Console:
    return Console(stderr=True)


def _settle(lab: Lab, names: set[str], timeout: float) -> tuple[set[str], float]:
    """Wait until Alertmanager holds none of `names` (resolved); returns those left and the seconds waited."""
    start = time.monotonic()
    while True:
        left = names & {a["labels"].get("alertname", "") for a in lab.alertmanager_alerts()}
        waited = time.monotonic() - start
        if not left or waited >= timeout:
            return left, waited
        time.sleep(1.0)


# How long an expected alert still active from an earlier run (or from a learner's own curl a moment before,
# as stage 8's PII example does) may take to resolve: its window of 1-2 minutes, then Prometheus's resolved
# notice. Measured: a PII leak a few seconds before `simulations attack` needed more than 60 s.
SETTLE_SECONDS = 180.0


def execute(
    lab: Lab,
    scenario: Scenario,
    *,
    timeout: float,
    no_wait: bool = False,
    keep_fault: bool = False,
    settle_timeout: float = SETTLE_SECONDS,
    console: Console | None = None,
) -> Outcome:
    """Run one scenario; raises LabError when the lab cannot be used (unreachable, admin refused, ...)."""
    console = console or progress_console()
    lab.require_ready(*scenario.services)
    watches = [Watch(scenario.name, e) for e in scenario.expected]
    before_names = set() if no_wait else _prepare(lab, scenario, watches, settle_timeout, console)
    injected_at = time.time()
    if not watches:
        console.print(f"[bold]{scenario.name}[/]: running for {scenario.duration:.0f}s")
    else:
        console.print(
            f"[bold]{scenario.name}[/]: injecting"
            + ("" if no_wait else f", watching for up to {timeout:.0f}s")
        )
    try:
        scenario.start(lab, 30.0 if no_wait else timeout)
        seen = _follow(
            lab, scenario, watches, timeout=timeout, no_wait=no_wait, injected_at=injected_at, console=console
        )
    finally:
        scenario.stop_load()
    if not watches and not no_wait:
        seen = lab.active_alert_names()
    expected_names = {w.expected.alert for w in watches}
    outcome = Outcome(
        scenario,
        watches,
        injected_at,
        also_fired=sorted(seen - before_names - expected_names - {""}),
        summary=scenario.summary(),
        waited=not no_wait,
    )
    if not no_wait and not keep_fault:
        scenario.cleanup(lab)
    return outcome


def _prepare(
    lab: Lab, scenario: Scenario, watches: list[Watch], settle_timeout: float, console: Console
) -> set[str]:
    """Before injecting: the alerts Alertmanager holds already (an expected one must resolve first, or it
    would not be notified again), and each watched metric's value."""
    lab.require_monitoring()
    before_names = {a["labels"].get("alertname", "") for a in lab.alertmanager_alerts()}
    stale = {w.expected.alert for w in watches} & before_names
    if stale:
        console.print(
            f"[yellow]{', '.join(sorted(stale))} is still there from an earlier run: cleaning up and "
            f"waiting up to {settle_timeout:.0f}s for it to resolve[/]"
        )
        scenario.cleanup(lab)
        left, _ = _settle(lab, stale, settle_timeout)
        if left:
            raise LabError(
                f"{', '.join(sorted(left))} is still active in Alertmanager ({lab.urls.alertmanager}) "
                "from an earlier run, so a new firing would not be notified. Clear the faults "
                "(`python -m simulations reset`) and wait for it to resolve, or restart the lab."
            )
        before_names -= stale
    for w in watches:
        w.before = lab.query_max(w.expected.query)
    return before_names


def _follow(
    lab: Lab,
    scenario: Scenario,
    watches: list[Watch],
    *,
    timeout: float,
    no_wait: bool,
    injected_at: float,
    console: Console,
) -> set[str]:
    """Show the scenario's progress until its load ends (--no-wait, no watches) or every expected alert was
    delivered or `timeout` passed; returns the names of the alerts seen active meanwhile."""
    t0 = time.monotonic()
    seen: set[str] = set()
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(scenario.name, total=scenario.duration if no_wait else timeout)
        while True:
            elapsed = time.monotonic() - t0
            if no_wait or not watches:
                if scenario.load_finished():
                    break
                status = scenario.progress()
            else:
                am_alerts = lab.alertmanager_alerts()
                seen |= {
                    a["labels"].get("alertname", "")
                    for a in am_alerts
                    if a.get("status", {}).get("state") == "active"
                }
                for w in watches:
                    for event in w.poll(lab, injected_at, am_alerts):
                        progress.console.print(f"  [green]✓[/] {event}")
                if all(w.delivered for w in watches) or elapsed >= timeout:
                    break
                status = " | ".join([scenario.progress(), *(_watch_status(w) for w in watches)])
            progress.update(
                task, completed=min(elapsed, progress.tasks[0].total or elapsed), description=status
            )
            time.sleep(1.0 if watches and not no_wait else 0.5)
        final = " | ".join([scenario.progress(), *(_watch_status(w) for w in watches)])
        progress.update(task, completed=progress.tasks[0].total, description=final)
    return seen


def recover(lab: Lab, outcome: Outcome, timeout: float, console: Console | None = None) -> None:
    """After the clean-up: wait (at most `timeout`) for the expected alerts to resolve; record how long."""
    console = console or progress_console()
    names = {w.expected.alert for w in outcome.watches if w.fired_after is not None}
    if not names:
        return
    console.print(f"  recovery: waiting up to {timeout:.0f}s for {', '.join(sorted(names))} to resolve")
    left, waited = _settle(lab, names, timeout)
    for w in outcome.watches:
        w.recovery_waited = waited
        if w.expected.alert not in left and w.fired_after is not None:
            w.resolved_after = waited


def _watch_status(w: Watch) -> str:
    parts = [f"{w.expected.metric} {fmt(w.peak)}"]
    if w.fired_after is None:
        parts.append(f"{w.expected.alert}: {w.prometheus_state}")
    else:
        parts.append(
            f"{w.expected.alert}: notified on "
            + (",".join(c for c in w.channels if w.notified_after.get(c)) or "none yet")
        )
    return " ".join(parts)


def hints(lab: Lab, outcomes: list[Outcome], timeout: float) -> list[str]:
    return [
        f"{w.scenario}: {w.expected.alert} — {w.hint(lab, timeout)}"
        for o in outcomes
        for w in o.watches
        if o.waited and not w.delivered
    ]
