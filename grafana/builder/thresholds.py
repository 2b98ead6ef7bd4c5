"""Threshold lines on panels. Alert lines come from the alert definitions (value, direction, and which
dashboard panel shows the signal), so a threshold is written once; colour-only lines are set per panel."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """A threshold drawn on a panel. `above`: past it means bad (else below it is bad)."""

    value: float
    above: bool = True
    alert: str | None = None  # None: colouring only, no alert behind it


@dataclass(frozen=True)
class AlertView:
    """Where an alert's signal is plotted and when it fires: what a dashboard needs of an alert."""

    name: str
    dashboard: str
    panel: str | None
    op: str
    value: float

    def line(self) -> Line:
        return Line(self.value, above=self.op != "<", alert=self.name)


# Stand-in for the monitoring contract until it lands on main: the thresholds of
# prometheus/rules/alerts.yml. `alert_views` is the only reader, so switching is a change there alone.
_INTERIM = [
    AlertView("MLHighErrorRatio", "ml-service", "5xx error ratio", ">", 0.05),
    AlertView("MLHighLatencyP90", "ml-service", "Prediction latency percentiles", ">", 0.25),
    AlertView("MLHighLatencyP99", "ml-service", "Prediction latency percentiles", ">", 1.0),
    AlertView("MLDataDriftDetected", "ml-service", "Dataset drift", "==", 1),
    AlertView("MLFeatureDrift", "ml-service", "Drifted features", "==", 1),
    AlertView("MLPredictionDrift", "ml-service", "Prediction drift score", ">", 0.15),
    AlertView("TriageDegraded", "pipeline-health", "Triage degraded ratio", ">", 0.2),
    AlertView("LLMHighLatency", "llm-quality", "End-to-end /chat latency", ">", 2.0),
    AlertView("LLMGroundednessLow", "llm-quality", "Groundedness", "<", 0.5),
    AlertView("LLMHallucinationHigh", "llm-quality", "Hallucination", ">", 0.5),
    AlertView("LLMRelevanceLow", "llm-quality", "Context relevance", "<", 0.3),
    AlertView("LLMEmbeddingDrift", "llm-quality", "Query embedding drift", ">", 0.3),
    AlertView("LLMEvaluationBacklog", "llm-quality", "Evaluation queue depth", ">", 50),
    AlertView("LLMEvaluationFailures", "llm-quality", "Evaluation failure ratio", ">", 0.2),
]


def alert_views() -> dict[str, AlertView]:
    """Every alert, by name."""
    return {view.name: view for view in _INTERIM}


def alert_line(name: str) -> Line:
    """The line of one alert, for a panel that shows its signal besides the one the alert names."""
    return alert_views()[name].line()


def panel_lines(dashboard: str) -> dict[str, list[Line]]:
    """Panel title -> the lines of the alerts that name that panel of `dashboard`."""
    lines: dict[str, list[Line]] = defaultdict(list)
    for view in alert_views().values():
        if view.dashboard == dashboard and view.panel:
            lines[view.panel].append(view.line())
    return dict(lines)
