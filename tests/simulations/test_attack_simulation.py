"""The attack simulation without a lab: which alerts it expects follows rag_api's safety modes, and its
messages really trip the checks they are meant to trip (the same detectors rag_api runs)."""

from __future__ import annotations

import random

from rag_api.safety.chain import SafetyChain
from rag_api.safety.settings import STAGE_CHECKS, SafetySettings
from simulations.attack import INJECTIONS, POLITE_ANSWERS, TOXIC_ANSWERS, AttackScenario
from simulations.scenarios import DriftScenario, SideBySide
from simulations.watch import Watch

MONITOR = {f"{s}.{c}": "monitor" for s, checks in STAGE_CHECKS.items() for c in checks}
ENFORCE = dict.fromkeys(MONITOR, "enforce")


def scenario(modes: dict[str, str], **rates: float) -> AttackScenario:
    values = {"injection_rate": 0.5, "pii_rate": 0.3, "toxic_rate": 0.3, "prompt_leak_rate": 0.0, **rates}
    attack = AttackScenario(duration=60, rps=2, rag_url="http://127.0.0.1:1", **values)
    attack._modes = modes  # what GET /safety would have said
    return attack


def names(attack: AttackScenario) -> list[str]:
    return [e.alert for e in attack.expected]


def test_monitor_mode_expects_every_leak_and_the_injection_share() -> None:
    assert names(scenario(MONITOR)) == ["LLMPromptInjectionShareHigh", "LLMPIILeak", "LLMToxicOutputHigh"]


def test_enforce_mode_expects_no_pii_leak() -> None:
    assert "LLMPIILeak" not in names(scenario(ENFORCE))
    assert "LLMPromptInjectionShareHigh" in names(scenario(ENFORCE))  # blocked attempts still count


def test_a_leaking_canary_replaces_the_injection_alert_it_mutes() -> None:
    expected = names(scenario(MONITOR, prompt_leak_rate=0.5))
    assert "LLMCanaryLeak" in expected and "LLMPromptInjectionShareHigh" not in expected


def test_rates_under_the_thresholds_expect_nothing() -> None:
    assert names(scenario(MONITOR, injection_rate=0.1, pii_rate=0.0, toxic_rate=0.0)) == []


def test_the_attack_messages_trip_the_checks_and_the_polite_ones_do_not() -> None:
    chain = SafetyChain(SafetySettings())
    for text in INJECTIONS:
        assert chain.scan_input(text).results[0].flagged, text
    for text in TOXIC_ANSWERS:
        toxicity = next(r for r in chain.scan_output(text).results if r.check == "toxicity")
        assert toxicity.flagged and toxicity.severity == "HIGH", (text, toxicity)
    for text in POLITE_ANSWERS:
        assert not any(r.flagged for r in chain.scan_output(text).results), text


def test_the_chat_stream_mixes_attacks_at_the_asked_rate() -> None:
    attack = scenario(MONITOR, injection_rate=0.5)
    stream = attack._chat(random.Random(3))
    queries = [next(stream)["query"] for _ in range(400)]
    share = sum(q in INJECTIONS for q in queries) / len(queries)
    assert 0.4 < share < 0.6 and attack.sent["injection"] + attack.sent["question"] == 400


def test_side_by_side_watches_both_and_keeps_their_services() -> None:
    drift = DriftScenario(duration=30, drift_amount=1.0, features=["ticket_length"], rps=5)
    both = SideBySide(drift, scenario(MONITOR))
    assert both.name == "drift+attack" and both.services == ("ml_api", "rag_api")
    assert [e.alert for e in both.expected] == ["MLFeatureDrift", *names(scenario(MONITOR))]
    assert both.duration == 60


def test_security_warnings_are_watched_on_email_too() -> None:
    """The security route mails every severity: the watch waits for that mail, as for a critical."""
    injection = next(e for e in scenario(MONITOR).expected if e.alert == "LLMPromptInjectionShareHigh")
    assert Watch("attack", injection).channels == ("slack", "email")
