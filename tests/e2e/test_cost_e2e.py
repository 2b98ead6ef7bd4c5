"""Cost and feedback end to end through the simulations themselves: `cost-spike` inflates one tenant's prompts
and LLMBudgetBurn reaches Slack and email; `feedback` votes real answers down through POST /feedback and
LLMNegativeFeedbackHigh reaches Slack."""

from __future__ import annotations

import httpx
import pytest

from simulations.cost import CostSpikeScenario, FeedbackScenario
from simulations.scenarios import execute

from .conftest import Lab
from .test_alerts_e2e import ALERT_TIMEOUT

pytestmark = pytest.mark.timeout(600)


def outvote(lab: Lab, scenario: FeedbackScenario) -> None:
    """The votes stay in the alert's 15-minute window: three up votes per down vote bring the share back
    under the threshold, so that the tests after this one see a quiet feedback alert."""
    ups = 3 * scenario.votes["down"]
    with httpx.Client(timeout=30) as client:
        for i in range(ups if scenario.answer_ids else 0):
            answer_id = scenario.answer_ids[i % len(scenario.answer_ids)]
            client.post(f"{lab.rag_url}/feedback", json={"answer_id": answer_id, "rating": "up"})


def test_the_feedback_simulation_delivers_its_alert(lab: Lab) -> None:
    scenario = FeedbackScenario(negative_rate=0.8, duration=60, rps=4, rag_url=lab.rag_url)
    assert [e.alert for e in scenario.expected] == ["LLMNegativeFeedbackHigh"]
    try:
        outcome = execute(lab.stack.client, scenario, timeout=ALERT_TIMEOUT)
    finally:
        outvote(lab, scenario)
    (watch,) = outcome.watches
    assert watch.delivered, (watch, outcome.summary, lab.snapshot())
    lab.figures["feedback: votes -> slack notification (s)"] = round(watch.notified_after["slack"] or 0, 1)
    assert scenario.sender is not None and set(scenario.sender.counts) == {"200"}, scenario.sender.counts


def test_the_cost_spike_simulation_delivers_the_budget_alert(lab: Lab) -> None:
    scenario = CostSpikeScenario(tenant="acme", factor=20, duration=90, rps=2, rag_url=lab.rag_url)
    assert [e.alert for e in scenario.expected] == ["LLMBudgetBurn"]  # the lab's $100 budget
    outcome = execute(lab.stack.client, scenario, timeout=ALERT_TIMEOUT)
    (watch,) = outcome.watches
    assert watch.delivered, (watch, outcome.summary, lab.snapshot())
    assert watch.channels == ("slack", "email")
    lab.figures["cost-spike: fault -> email notification (s)"] = round(watch.notified_after["email"] or 0, 1)
    assert not lab.active_faults("rag_api"), "the clean-up left the token_inflation fault on"
