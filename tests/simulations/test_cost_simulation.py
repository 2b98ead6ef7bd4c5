"""The cost-spike and feedback simulations without a lab: the alerts they expect follow the contract's
thresholds and the tenant's budget, their votes are valid POST /feedback bodies at the asked share, and the
paced sender really sends the tenant header."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from monitoring.contract import threshold
from rag_api.feedback import FeedbackRequest
from simulations.cli import build_parser, scenario_from
from simulations.cost import (
    CostProbe,
    CostSpikeScenario,
    FeedbackScenario,
    cost_expectations,
    feedback_expectations,
    tenant_budget,
)
from simulations.load import PacedSender

ANSWER_IDS = [f"{i:032x}" for i in range(5)]


def names(expected: list) -> list[str]:
    return [e.alert for e in expected]


def test_a_spike_past_the_budget_expects_the_budget_burn_only() -> None:
    # 0.0006 $ an answer x 20 x 1/s is ~ $1000 a day: ten times a $100 budget.
    probe = CostProbe("acme", cost_per_answer=0.0006, daily_budget=100.0)
    (burn,) = cost_expectations(probe, factor=20, rps=1.0)
    assert burn.alert == "LLMBudgetBurn"
    assert 'tenant="acme"' in burn.query and "[5m]" in burn.query  # the rule's lab window


def test_a_spike_within_a_large_budget_expects_the_cost_per_request_warning() -> None:
    probe = CostProbe("globex", cost_per_answer=0.0006, daily_budget=1_000_000.0)
    assert names(cost_expectations(probe, factor=20, rps=1.0)) == ["LLMCostPerRequestHigh"]


def test_a_small_inflation_expects_nothing() -> None:
    cheap = threshold("LLMCostPerRequestHigh") / 4
    probe = CostProbe("acme", cost_per_answer=cheap, daily_budget=1_000_000.0)
    assert cost_expectations(probe, factor=2, rps=1.0) == []


def test_the_budget_is_read_from_the_tenants_gauge() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("llm_tenant_daily_budget_dollars", "budget", ["tenant"], registry=registry)
    gauge.labels("acme").set(20)
    gauge.labels("other").set(100)
    page = generate_latest(registry).decode()
    assert tenant_budget(page, "acme") == 20.0 and tenant_budget(page, "other") == 100.0
    assert tenant_budget(page, "globex") is None


@pytest.mark.parametrize(("rate", "expected"), [(0.8, ["LLMNegativeFeedbackHigh"]), (0.2, [])])
def test_the_feedback_alert_is_expected_above_its_threshold(rate: float, expected: list[str]) -> None:
    assert names(feedback_expectations(rate, rps=1.0)) == expected


def test_the_votes_are_valid_feedback_at_the_asked_share() -> None:
    scenario = FeedbackScenario(negative_rate=0.8, duration=60, rps=1, rag_url="http://127.0.0.1:1")
    stream = scenario.votes_on(ANSWER_IDS, random.Random(5))
    votes = [FeedbackRequest.model_validate(next(stream)) for _ in range(500)]
    down = [v for v in votes if v.rating == "down"]
    assert 0.74 < len(down) / len(votes) < 0.86
    assert {v.reason for v in down} == {"wrong", "irrelevant"}
    assert {v.answer_id for v in votes} == set(ANSWER_IDS)
    assert scenario.votes == {"down": len(down), "up": len(votes) - len(down)}


def test_the_cli_builds_both_scenarios() -> None:
    parser = build_parser()
    spike_args = parser.parse_args(["cost-spike", "--tenant", "globex", "--factor", "30"])
    spike = scenario_from(spike_args, "cost-spike")
    assert isinstance(spike, CostSpikeScenario) and (spike.tenant, spike.factor) == ("globex", 30)
    feedback = scenario_from(parser.parse_args(["feedback", "--negative-rate", "0.6"]), "feedback")
    assert isinstance(feedback, FeedbackScenario) and feedback.negative_rate == 0.6
    with pytest.raises(SystemExit):
        parser.parse_args(["cost-spike", "--factor", "101"])  # the fault accepts 1-100
    with pytest.raises(SystemExit):
        parser.parse_args(["feedback", "--negative-rate", "1.5"])


@pytest.fixture
def header_server() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers.get("X-Tenant"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/chat", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_paced_sender_sends_the_tenant_header(header_server: tuple[str, list[str | None]]) -> None:
    url, seen = header_server
    payloads = iter([{"query": "q"}] * 3)
    sender = PacedSender(url, payloads, rps=50, count=3, workers=1, headers={"X-Tenant": "acme"})
    sender.start()
    sender.join(timeout=10)
    assert seen == ["acme"] * 3 and sender.counts == {"200": 3}
