"""Safety end to end: rag_api's `pii_leak` fault makes answers echo a fake customer record; the output PII
check flags them (monitor mode), LLMPIILeak fires in Prometheus and Alertmanager delivers it on the security
route: the #lab-security Slack channel and the security mailbox."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest

from labctl.config import ROOT, alert_names, rule_files
from labctl.traffic import in_domain_questions

from .conftest import Lab
from .test_alerts_e2e import await_alert, background

pytestmark = pytest.mark.timeout(600)

PII_ALERT = "LLMPIILeak"  # critical, team=security


def test_pii_leak_reaches_the_security_channel_and_mailbox(lab: Lab) -> None:
    assert PII_ALERT in alert_names(rule_files(ROOT / "prometheus" / "prometheus.yml"))
    questions = in_domain_questions()
    counter = itertools.count()
    since = time.time()
    lab.inject("rag_api", "pii_leak", 90, rate=1.0)

    def chat(client: httpx.Client) -> None:
        question = questions[next(counter) % len(questions)]
        client.post(f"{lab.rag_url}/chat", json={"query": question, "evaluate": "off"})

    try:
        with background(chat, pause=0.5):
            await_alert(lab, PII_ALERT, ("slack", "email"), since, "PII leak")
    finally:
        lab.clear_faults()
    slack = lab.notified(PII_ALERT, "slack", since)
    assert {n.get("slack_channel") for n in slack} == {"#lab-security"}, slack
    email = lab.notified(PII_ALERT, "email", since)
    assert all("security@observability-lab.local" in n.get("to", []) for n in email), email
    leaked = lab.query_max('sum(llm_safety_checks_total{check="pii",stage="output",outcome="flagged"})')
    assert leaked and leaked > 0, "no flagged answer counted in Prometheus"
