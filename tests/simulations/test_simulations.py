"""The fault simulations (`python -m simulations ...`) run as a user runs them, against a real native lab.

One lab for the module (labctl's NativeStack: 1 s scrapes and rule evaluations, alert `for:` cut to 3 s,
Alertmanager grouping at 1 s). The CLI runs in a subprocess; its exit code and table are checked, and what it
claims (a notification on Slack and email, a fault switched on) is checked again at the source: the
receiver and the service's admin API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labctl.config import ROOT, free_ports
from labctl.stack import NativeStack
from simulations.data import drifted_tickets, reference_stats
from simulations.scenarios import latency_expectations
from tests.support.lab import alerting_stack
from tests.support.receiver import Elements, dump_dom, needs_chromium

pytestmark = pytest.mark.timeout(600)

SUBCOMMANDS = ("drift", "hallucination", "latency", "attack", "traffic", "all", "reset")


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "simulations", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lab_args(stack: NativeStack) -> list[str]:
    return stack.urls.cli_args()


# ------------------------------------------------------------------------------------------ without a lab


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_explains_its_knobs(command: str) -> None:
    r = run_cli(command, "--help", timeout=60)
    assert r.returncode == 0, r.stderr
    knobs = {
        "drift": ["--duration", "--drift-amount", "standard deviation", "--features", "--rps"],
        "hallucination": ["--num-queries", "--hallucination-rate", "--out-of-domain-share"],
        "latency": ["--duration", "--delay-ms", "--burst-size", "--service"],
        "attack": ["--injection-rate", "--pii-rate", "--toxic-rate", "--prompt-leak-rate", "--rps"],
        "traffic": ["--duration", "--users"],
        "all": ["--recovery-timeout"],
        "reset": [],
    }[command]
    common = ["--ml-url", "--rag-url", "--prometheus-url", "--alertmanager-url", "--receiver-url"]
    common += ["--admin-token", "--timeout", "--no-wait"]
    text = " ".join(r.stdout.split())  # argparse wraps lines
    for knob in knobs + common:
        assert knob in text, f"`{command} --help` does not mention {knob}:\n{r.stdout}"


def test_bad_arguments_are_refused_with_the_reason() -> None:
    r = run_cli("drift", "--features", "ticket_length,tier", timeout=60)
    assert r.returncode == 2 and "unknown feature 'tier'" in r.stderr, r.stderr
    r = run_cli("latency", "--service", "ml", "--delay-ms", "100", timeout=60)
    assert r.returncode == 2 and "below every latency threshold" in r.stderr, r.stderr


def test_an_unreachable_lab_exits_2_with_a_hint() -> None:
    port = free_ports(1)[0]
    r = run_cli("drift", f"--ml-url=http://127.0.0.1:{port}", "--timeout", "5", timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "make lab" in r.stderr, r.stderr


def test_latency_expectations_pick_the_alert_a_delay_raises() -> None:
    assert [e.alert for e in latency_expectations(1500, ["ml_api", "rag_api"])] == ["MLHighLatencyP99"]
    assert [e.alert for e in latency_expectations(500, ["ml_api"])] == ["MLHighLatencyP90"]
    assert [e.alert for e in latency_expectations(2500, ["rag_api"])] == ["LLMHighLatency"]


def test_drifted_tickets_move_by_the_asked_standard_deviations() -> None:
    stats = reference_stats()
    n = 3000

    def sample(amount: float, features: list[str]) -> dict[str, list[float]]:
        gen = drifted_tickets(features, amount, seed=11)
        rows = [next(gen) for _ in range(n)]
        return {f: [row[f] for row in rows] for f in stats}

    calm = sample(0.0, ["business_impact"])
    moved = sample(0.5, ["business_impact"])
    for name, st in stats.items():
        values = moved[name]
        assert all(st.minimum <= v <= st.maximum for v in values), f"{name} left its valid range"
        assert all(isinstance(v, int) for v in values) == st.integer, f"{name}: wrong type"
    # amount 0 is the reference itself; 0.5 SD moves the mean by about half an SD (a little less: clipping).
    bi = stats["business_impact"]
    calm_mean = sum(calm["business_impact"]) / n
    moved_mean = sum(moved["business_impact"]) / n
    assert abs(calm_mean - bi.mean) < 0.1 * bi.sd
    assert 0.4 * bi.sd < moved_mean - calm_mean <= 0.5 * bi.sd + 0.05
    # features not asked for do not move
    assert moved["ticket_length"] == calm["ticket_length"]


def test_the_hint_of_an_alert_that_went_pending_and_back_says_so() -> None:
    from types import SimpleNamespace

    from simulations.lab import LabUrls
    from simulations.watch import Expected, Watch

    watch = Watch("latency", Expected("MLHighLatencyP90", "ml_api", "ML p90 latency (s)", "vector(1)"))
    watch.before, watch.peak, watch.pending_after = 0.01, 0.4, 6.0
    watch.prometheus_state = "inactive"  # pending once, back to inactive before `for:` elapsed
    hint = watch.hint(SimpleNamespace(urls=LabUrls.from_ports()), timeout=60)
    assert "went pending" in hint and "after 6s" in hint and "never became pending" not in hint, hint


# -------------------------------------------------------------------------------------------- with a lab


@pytest.fixture(scope="module")
def stack() -> Iterator[NativeStack]:
    with alerting_stack(max_for=3) as lab:
        yield lab


def _notified(stack: NativeStack, alert: str, channel: str, since: float) -> list[dict]:
    return [
        n
        for n in stack.client.notifications(channel)
        if n["received_at_epoch"] >= since
        and alert in (n.get("alerts") or [])
        and n.get("status") == "firing"
    ]


def test_drift_end_to_end_alert_delivered(stack: NativeStack, tmp_path: Path) -> None:
    since = time.time()
    report = tmp_path / "report.html"
    r = run_cli(
        "drift", *lab_args(stack), "--drift-amount", "1.5", "--timeout", "90", "--report", str(report)
    )
    out = r.stdout
    assert r.returncode == 0, f"exit {r.returncode}\n{out}\n{r.stderr}"
    row = next((ln for ln in out.splitlines() if "MLDataDriftDetected" in ln), "")
    assert "delivered" in row and "critical" in row, out
    times = [float(t) for t in re.findall(r"(\d+\.\d)s", row)]
    assert len(times) == 3 and all(0 < t < 90 for t in times), f"fired/slack/email times in {row!r}"
    # What the table claims is true at the source: both channels got the firing notification.
    assert _notified(stack, "MLDataDriftDetected", "slack", since), stack.client.notifications()
    assert _notified(stack, "MLDataDriftDetected", "email", since), stack.client.notifications()
    # The clean-up emptied the drift window (so the alert resolves).
    status = httpx.get(f"{stack.ml_url}/drift/status", timeout=10).json()
    assert status["window_size"] < 100, status
    check_report(report, out, {"drift": ["MLDataDriftDetected"]}, tmp_path)


def check_report(report: Path, out: str, alerts: dict[str, list[str]], tmp_path: Path) -> None:
    """The HTML report the run printed: in headless Chromium, one section per scenario with a chart per
    expected alert, its threshold line, and the markers of the chain the table claims."""
    assert f"report: {report}" in out, out
    needs_chromium()
    page = Elements(dump_dom(report.as_uri(), tmp_path))
    sections = page.having("section", **{"class": "scenario"})
    assert [s["data-scenario"] for s in sections] == list(alerts), sections
    charts = page.having("svg", **{"class": "chart"})
    assert len(charts) == sum(len(names) for names in alerts.values()), charts
    for names in alerts.values():
        for name in names:
            assert any(c["aria-label"].endswith(name) for c in charts), (name, charts)
    assert page.having("line", **{"class": "threshold"}), "no threshold line"
    assert page.having("polyline", **{"class": "series"}), "no metric line: range query empty?"
    kinds = {m["data-kind"] for m in page.having("g", **{"class": "marker"})}
    assert {"injection", "pending", "firing", "notification"} <= kinds, kinds
    text = " ".join(page.text)
    assert "Fault simulations: from injection to notification" in text and "delivered" in text


def test_an_alert_that_cannot_come_exits_1_with_a_hint(stack: NativeStack) -> None:
    # amount 0 sends the training distribution: nothing drifts, and 5 s is too short for anything anyway.
    r = run_cli("drift", *lab_args(stack), "--drift-amount", "0", "--timeout", "5", "--duration", "5")
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "MISSING" in r.stdout and "What to check" in r.stdout, r.stdout
    hint = r.stdout[r.stdout.index("What to check") :]
    assert "MLDataDriftDetected" in hint and ("threshold" in hint or "did not move" in hint), hint


def test_no_wait_only_injects_a_visible_fault(stack: NativeStack) -> None:
    r = run_cli(
        "hallucination", *lab_args(stack), "--no-wait", "--num-queries", "2", "--hallucination-rate", "0.3"
    )
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Fault simulations" not in r.stdout, "--no-wait must not watch or print the table"
    active = httpx.get(f"{stack.rag_url}/admin/faults", timeout=10).json()["active"]
    assert [(f["name"], f["params"]) for f in active] == [("hallucination", {"rate": 0.3})], active
    assert active[0]["remaining_seconds"] > 10
    r = run_cli("reset", *lab_args(stack), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert httpx.get(f"{stack.rag_url}/admin/faults", timeout=10).json()["active"] == []


def test_traffic_runs_healthy_locust_users(stack: NativeStack) -> None:
    r = run_cli("traffic", *lab_args(stack), "--duration", "6", "--users", "2")
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    counts = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"POST (/\w+)\s+(\d+) requests\s+(\d+) failures", r.stdout)
    }
    assert counts.get("/predict", (0, 0))[0] > 0 and counts.get("/chat", (0, 0))[0] > 0, r.stdout
    assert all(failures == 0 for _, failures in counts.values()), r.stdout
