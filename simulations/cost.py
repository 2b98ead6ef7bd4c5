"""`cost-spike --tenant T` and `feedback --negative-rate R`: the LLM cost and user-feedback alerts.

cost-spike turns on rag_api's `token_inflation` fault for one tenant (its prompts carry their context
`factor` times) and sends /chat with `X-Tenant: T`. Which alert to expect follows from one probe answer of
that tenant before the fault (its cost) and the tenant's daily budget (rag_api's
`llm_tenant_daily_budget_dollars` gauge): when the projected day's spend passes the budget, LLMBudgetBurn
(critical), which mutes the cost warnings of its family; else LLMCostPerRequestHigh when one inflated answer
costs more than its threshold.

feedback asks /chat for a few real answers, then votes on them through POST /feedback, a share R down. A
second vote on an answer replaces the first in the records but counts again in `llm_user_feedback_total`, so
a small pool of answers carries any number of votes. Expected: LLMNegativeFeedbackHigh above its threshold.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitoring.contract import alerts_by_name, threshold
from simulations.data import in_domain_questions
from simulations.lab import Lab, LabError
from simulations.load import PacedSender
from simulations.scenarios import PacedScenario
from simulations.watch import Expected

SECONDS_PER_DAY = 86400
DOWN_REASONS = ("wrong", "irrelevant")  # the reasons a down vote of the simulation gives, in turn
ANSWER_POOL = 12  # real answers the feedback simulation votes on


def _chat(client: httpx.Client, rag_url: str, query: str, tenant: str | None = None) -> dict[str, Any]:
    headers = {"X-Tenant": tenant} if tenant is not None else {}
    try:
        response = client.post(f"{rag_url}/chat", json={"query": query, "evaluate": "off"}, headers=headers)
        response.raise_for_status()
        return dict(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise LabError(f"rag_api at {rag_url} did not answer POST /chat: {exc}") from exc


def tenant_budget(metrics_text: str, tenant: str) -> float | None:
    """The tenant's `llm_tenant_daily_budget_dollars` in a /metrics page, None without one."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "llm_tenant_daily_budget_dollars":
            for sample in family.samples:
                if sample.labels.get("tenant") == tenant:
                    return float(sample.value)
    return None


@dataclass(frozen=True)
class CostProbe:
    """One answer of the tenant before the fault: what rag_api resolved the tenant to and what it cost."""

    tenant: str
    cost_per_answer: float
    daily_budget: float

    @classmethod
    def take(cls, rag_url: str, tenant: str) -> CostProbe:
        with httpx.Client(timeout=30) as client:
            answer = _chat(client, rag_url, in_domain_questions()[0], tenant)
            resolved = str(answer["tenant"])
            try:
                page = client.get(f"{rag_url}/metrics")
                page.raise_for_status()
            except httpx.HTTPError as exc:
                raise LabError(f"rag_api at {rag_url} did not serve /metrics: {exc}") from exc
        budget = tenant_budget(page.text, resolved)
        if budget is None:
            raise LabError(f"rag_api has no llm_tenant_daily_budget_dollars for tenant {resolved!r}")
        return cls(resolved, float(answer["cost_dollars"]), budget)


def cost_expectations(probe: CostProbe, factor: int, rps: float) -> list[Expected]:
    """The alert(s) a spike of `rps` answers/s at `factor` times the probe's cost raises.

    The inflated cost is taken as `factor` times the probe's: an upper estimate, since only the retrieved
    context is repeated (the question, system prompt and answer are not)."""
    inflated = probe.cost_per_answer * factor
    window = alerts_by_name()["LLMBudgetBurn"].params["window"].get("lab")  # the rule's own range
    projected = inflated * rps * SECONDS_PER_DAY
    if projected > probe.daily_budget * threshold("LLMBudgetBurn"):
        selector = f'{{service="rag_api",tenant="{probe.tenant}"}}'
        query = (
            f"max(predict_linear(service_tenant:llm_cost_dollars:increase1d{selector}[{window}], "
            f"{SECONDS_PER_DAY}) / on (service, tenant) max by (service, tenant) "
            f"(llm_tenant_daily_budget_dollars{selector}))"
        )
        return [Expected("LLMBudgetBurn", "rag_api", f"{probe.tenant}: projected day / budget", query)]
    if inflated > threshold("LLMCostPerRequestHigh"):
        query = 'max(service:llm_cost_per_request_dollars:ratio_rate1m{service="rag_api"})'
        return [Expected("LLMCostPerRequestHigh", "rag_api", "cost per answer ($)", query)]
    return []


class CostSpikeScenario(PacedScenario):
    name = "cost-spike"
    services = ("rag_api",)

    def __init__(self, *, tenant: str, factor: int, duration: float, rps: float, rag_url: str) -> None:
        self.tenant, self.factor = tenant, factor
        self.duration, self.rps = duration, rps
        self.rag_url = rag_url
        self._probe: CostProbe | None = None

    @property
    def probe(self) -> CostProbe:
        if self._probe is None:  # taken once, when the engine first asks what to expect (before the fault)
            self._probe = CostProbe.take(self.rag_url, self.tenant)
        return self._probe

    @property
    def expected(self) -> list[Expected]:  # type: ignore[override]
        return cost_expectations(self.probe, self.factor, self.rps)

    def _payloads(self) -> Iterator[dict[str, Any]]:
        for query in itertools.cycle(in_domain_questions()):
            yield {"query": query, "evaluate": "off"}

    def start(self, lab: Lab, hold: float) -> None:
        lab.inject(
            "rag_api", "token_inflation", self.duration + hold, factor=self.factor, tenant=self.probe.tenant
        )
        self.sender = PacedSender(
            f"{lab.urls.rag}/chat",
            self._payloads(),
            rps=self.rps,
            duration=self.duration,
            headers={"X-Tenant": self.tenant},
        )
        self.sender.start()

    def progress(self) -> str:
        return f"{self.sender.sent if self.sender else 0} answers for {self.probe.tenant}"

    def summary(self) -> list[str]:
        p = self.probe
        sent = self.sender.sent if self.sender else 0
        codes = dict(self.sender.counts) if self.sender else {}
        return [
            f"cost-spike: {sent} /chat for tenant {p.tenant} at {self.rps:g}/s with token_inflation factor "
            f"{self.factor} (status codes {codes}); one answer cost ${p.cost_per_answer:.5f} before, about "
            f"${p.cost_per_answer * self.factor:.4f} inflated: a day at this rate "
            f"${p.cost_per_answer * self.factor * self.rps * SECONDS_PER_DAY:,.0f} vs the budget "
            f"${p.daily_budget:g}"
        ]

    def cleanup(self, lab: Lab) -> None:
        lab.clear_faults("rag_api", "token_inflation")


def feedback_expectations(negative_rate: float, rps: float) -> list[Expected]:
    share_alert = "LLMNegativeFeedbackHigh"
    if negative_rate <= threshold(share_alert) or rps <= threshold(share_alert, param="min_rate"):
        return []
    votes = 'llm_user_feedback_total{service="rag_api"'
    query = f'sum(increase({votes},rating="down"}}[15m])) / sum(increase({votes}}}[15m]))'
    return [Expected(share_alert, "rag_api", "down share / 15m", query)]


class FeedbackScenario(PacedScenario):
    name = "feedback"
    services = ("rag_api",)

    def __init__(self, *, negative_rate: float, duration: float, rps: float, rag_url: str) -> None:
        self.negative_rate = negative_rate
        self.duration, self.rps = duration, rps
        self.rag_url = rag_url
        self.expected = feedback_expectations(negative_rate, rps)
        self.answer_ids: list[str] = []
        self.votes = {"up": 0, "down": 0}

    def votes_on(self, answer_ids: list[str], rng: random.Random) -> Iterator[dict[str, Any]]:
        """Votes cycling over the answers, a share `negative_rate` down (with a reason), the rest up."""
        reasons = itertools.cycle(DOWN_REASONS)
        for answer_id in itertools.cycle(answer_ids):
            down = rng.random() < self.negative_rate
            self.votes["down" if down else "up"] += 1
            if down:
                yield {"answer_id": answer_id, "rating": "down", "reason": next(reasons)}
            else:
                yield {"answer_id": answer_id, "rating": "up"}

    def start(self, lab: Lab, hold: float) -> None:
        questions = in_domain_questions()
        with httpx.Client(timeout=30) as client:
            answers = [_chat(client, lab.urls.rag, q) for q in itertools.islice(questions, ANSWER_POOL)]
        self.answer_ids = [str(a["answer_id"]) for a in answers]
        votes = self.votes_on(self.answer_ids, random.Random(13))
        self.sender = PacedSender(f"{lab.urls.rag}/feedback", votes, rps=self.rps, duration=self.duration)
        self.sender.start()

    def progress(self) -> str:
        return f"{self.votes['down']} down, {self.votes['up']} up"

    def summary(self) -> list[str]:
        codes = dict(self.sender.counts) if self.sender else {}
        return [
            f"feedback: {self.votes['down']} down and {self.votes['up']} up votes on "
            f"{len(self.answer_ids)} answers at {self.rps:g}/s (negative rate {self.negative_rate:g}); "
            f"status codes {codes}"
        ]
