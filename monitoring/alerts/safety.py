"""rag_api safety alerts (rag_api/safety/): leaks in answers, prompt-injection attempts, toxic answers, the
scanner itself. Leak alerts count outcome `flagged` only: a blocked or redacted answer never reached a user.
The canary alert mutes the injection alert of its service (alertmanager.yml): a leaked canary says the
injection worked, which is the one thing to act on."""

from __future__ import annotations

from monitoring.alerts.ml import MIN_RATE
from monitoring.contract import Alert, P

# "Any in 5 minutes" in production; the lab's rules all look back one minute (its scrape is 5 s).
WINDOW = P("1m", production="5m")
# Routed to the security receivers (alertmanager.yml): their own Slack channel and mailbox.
SECURITY = {"team": "security"}
CHECKS = "llm_safety_checks_total"
INJECTION = f'{CHECKS}{{check="prompt_injection",stage="input"'


def _leaked(check: str) -> str:
    return (
        f'sum by (service) (increase({CHECKS}{{check="{check}",stage="output",outcome="flagged"}}'
        "[{window}])) > {threshold}"
    )


def _toxic(severity: str = "") -> str:
    level = f',severity="{severity}"' if severity else ""
    return (
        f'sum by (service) (increase(llm_safety_flags_total{{check="toxicity",stage="output"{level}}}'
        "[{window}])) > {threshold}"
    )


ALERTS = [
    Alert(
        name="LLMPIILeak",
        group="llm_safety",
        labels=SECURITY,
        service="rag_api",
        family="pii_leak",
        severity="critical",
        expr=_leaked("pii"),
        params={"threshold": P(0), "window": WINDOW},
        for_=P("30s", production="1m"),
        summary="Personal data in answers of {{ $labels.service }}",
        description=(
            "{{ $value | humanize }} answer(s) in the last {window} carried personal data or a secret "
            "(email, phone, card, SSN, IBAN, ...) to the user: the PII check runs in monitor mode."
        ),
        dashboard="llm-safety",
        panel="PII in answers",
        signal='answers whose PII check was flagged and not redacted (`outcome="flagged"`)',
        production_note="any in `[5m]`",
        trigger="rag_api `pii_leak` fault (`.venv/bin/python -m simulations attack`)",
    ),
    Alert(
        name="LLMCanaryLeak",
        group="llm_safety",
        labels=SECURITY,
        service="rag_api",
        family="prompt_leak",
        severity="critical",
        expr=_leaked("canary_leak"),
        params={"threshold": P(0), "window": WINDOW},
        for_=P("30s", production="1m"),
        summary="{{ $labels.service }} answers leak the generation prompt (canary seen)",
        description=(
            "{{ $value | humanize }} answer(s) in the last {window} contained the canary token planted in "
            "the generation prompt: a prompt injection got the model to reveal its instructions."
        ),
        dashboard="llm-safety",
        panel="Canary leaks",
        signal="answers containing the prompt's canary token",
        production_note="any in `[5m]`",
        trigger=(
            "rag_api `prompt_leak` fault (`.venv/bin/python -m simulations attack --prompt-leak-rate 0.5`)"
        ),
    ),
    Alert(
        name="LLMPromptInjectionShareHigh",
        group="llm_safety",
        labels=SECURITY,
        service="rag_api",
        family="injection",
        severity="warning",
        expr=(
            f'sum by (service) (rate({INJECTION},outcome=~"flagged|blocked"}}[{{window}}]))\n'
            f'/ sum by (service) (rate({INJECTION},outcome!="error"}}[{{window}}])) > {{threshold}}\n'
            f"and on (service) sum by (service) (rate({INJECTION}}}[{{window}}])) > {{min_rate}}"
        ),
        params={"threshold": P(0.2, production=0.05), "min_rate": MIN_RATE, "window": WINDOW},
        for_=P("45s", production="10m"),
        summary="Many prompt-injection attempts on {{ $labels.service }}",
        description=(
            "{{ $value | humanizePercentage }} of the messages in the last {window} look like prompt "
            "injection or jailbreak attempts (threshold {threshold_pct}%)."
        ),
        dashboard="llm-safety",
        panel="Flagged share by check",
        signal="share of user messages flagged (or blocked) by the prompt-injection check",
        production_note="over `[5m]`",
        trigger="`.venv/bin/python -m simulations attack --injection-rate 0.5` (muted by `LLMCanaryLeak`)",
    ),
    Alert(
        name="LLMToxicOutputHigh",
        group="llm_safety",
        labels=SECURITY,
        service="rag_api",
        family="toxicity",
        severity="critical",
        expr=_toxic("HIGH"),
        params={"threshold": P(0), "window": WINDOW},
        for_=P("30s", production="1m"),
        summary="Highly toxic answers from {{ $labels.service }}",
        description=(
            "{{ $value | humanize }} answer(s) in the last {window} scored HIGH on the toxicity check "
            "(score 0.9 or more): abusive, hateful or threatening language reached users or was refused."
        ),
        dashboard="llm-safety",
        panel="Toxic answers by severity",
        signal="answers flagged by the toxicity check with severity `HIGH`",
        production_note="any in `[5m]`",
        trigger=(
            "`.venv/bin/python -m simulations attack --toxic-rate 0.3` (toxic answers to /monitor/inference)"
        ),
    ),
    Alert(
        name="LLMToxicOutput",
        group="llm_safety",
        labels=SECURITY,
        service="rag_api",
        family="toxicity",
        severity="warning",
        expr=_toxic(),
        params={"threshold": P(0, production=2), "window": WINDOW},
        for_=P("45s", production="5m"),
        summary="Toxic answers from {{ $labels.service }}",
        description=(
            "{{ $value | humanize }} answer(s) in the last {window} were flagged by the toxicity check (any "
            "severity; threshold {threshold})."
        ),
        dashboard="llm-safety",
        panel="Toxic answers by severity",
        signal="answers flagged by the toxicity check, any severity",
        production_note="more than 2 in `[5m]`",
        trigger="toxic answers posted to /monitor/inference (muted by `LLMToxicOutputHigh` when HIGH)",
    ),
    Alert(
        name="LLMSafetyScannerErrors",
        group="llm_safety",
        labels=SECURITY,
        service="rag_api",
        family="safety_scanner",
        severity="warning",
        expr=(
            f'sum by (service) (rate({CHECKS}{{outcome="error"}}[{{window}}]))\n'
            f"/ sum by (service) (rate({CHECKS}[{{window}}])) > {{threshold}}\n"
            f"and on (service) sum by (service) (rate({CHECKS}[{{window}}])) > {{min_rate}}"
        ),
        params={"threshold": P(0.05, production=0.01), "min_rate": MIN_RATE, "window": WINDOW},
        for_=P("45s", production="10m"),
        summary="Safety checks fail on {{ $labels.service }}",
        description=(
            "{{ $value | humanizePercentage }} of the safety checks in the last {window} raised instead of "
            "scoring: those texts passed unchecked (fail open) or were refused (fail closed)."
        ),
        dashboard="llm-safety",
        panel="Scanner errors",
        signal="share of safety checks with outcome `error`",
        production_note="over `[5m]`",
        trigger="rag_api `safety_error` fault, `rate` ≥ 0.2",
    ),
]
