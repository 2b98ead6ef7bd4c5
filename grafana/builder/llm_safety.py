"""The LLM safety dashboard (uid llm-safety): rag_api's safety chain (rag_api/safety/) — checks by check and
stage, flagged share, leaks in answers, categories, blocked vs monitored, scanner errors and latency.
Words: texts/llm-safety.md."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from .board import Board
from .panels import RI, quantiles, rate_by, share, stat, target
from .panels import timeseries as ts

PanelList = list[Builder[dm.Panel]]
BOARD = Board("llm-safety")
CHECKS = "llm_safety_checks_total"
FLAGS = "llm_safety_flags_total"
ACTED = 'outcome=~"flagged|blocked|redacted"'  # flagged, whatever the mode did with it


def _answers(check: str) -> str:
    """Answers a check flagged per interval, by what happened to them (flagged = reached the user)."""
    return f'sum by (outcome, source) (increase({CHECKS}{{check="{check}",stage="output",{ACTED}}}[{RI}]))'


@BOARD.row("Checks")
def checks() -> PanelList:
    flagged = (
        f"sum by (check, stage) (rate({CHECKS}{{{ACTED}}}[{RI}]))\n"
        f'/ sum by (check, stage) (rate({CHECKS}{{outcome!="error"}}[{RI}]))'
    )
    return [
        ts("Checks per second by check and stage", [rate_by(CHECKS, "check, stage")], unit="reqps").span(8),
        ts(
            "Flagged share by check", [target(flagged, "{{stage}} {{check}}")], unit="percentunit", minimum=0
        ).span(8),
        ts(
            "Blocked vs monitored",
            [rate_by(f'{CHECKS}{{outcome=~"flagged|blocked|redacted"}}', "outcome")],
            unit="reqps",
            stack=True,
        ).span(8),
    ]


@BOARD.row("Leaks and toxic answers")
def leaks() -> PanelList:
    toxic = f'sum by (severity) (increase({FLAGS}{{check="toxicity",stage="output"}}[{RI}]))'
    return [
        ts("PII in answers", [target(_answers("pii"), "{{outcome}} ({{source}})")], minimum=0).span(8),
        ts("Canary leaks", [target(_answers("canary_leak"), "{{outcome}} ({{source}})")], minimum=0).span(8),
        ts("Toxic answers by severity", [target(toxic, "{{severity}}")], minimum=0).span(8),
    ]


@BOARD.row("Categories and sources")
def categories() -> PanelList:
    acted = f'sum(increase({CHECKS}{{outcome=~"blocked|redacted"}}[$__range]))'
    return [
        ts("Flags by category", [rate_by(FLAGS, "check, category")], unit="reqps", stack=True).span(8),
        ts("Flags by severity", [rate_by(FLAGS, "severity")], unit="reqps", stack=True).span(6),
        ts("Checks by source", [rate_by(CHECKS, "source")], unit="reqps", stack=True).span(6),
        stat("Blocked or redacted over the range", [target(acted, "blocked + redacted")], decimals=0).span(4),
    ]


@BOARD.row("Scanner")
def scanner() -> PanelList:
    errors = [target(share(CHECKS, 'outcome="error"'), "error share")]
    return [
        ts("Scanner errors", errors, unit="percentunit", minimum=0).span(8),
        ts(
            "Scanner latency by check",
            quantiles("llm_safety_check_duration_seconds", (0.5, 0.99), by="check"),
            unit="s",
        ).span(8),
        ts(
            "Scores by check (p90)",
            quantiles("llm_safety_score", (0.9,), by="check, stage"),
            unit="percentunit",
            minimum=0,
            maximum=1,
        ).span(8),
    ]
