"""Threshold lines on panels. An alert's line comes from the monitoring contract (monitoring/alerts/): its
value, when it fires and the dashboard panel that plots its signal are written there once. Colour-only lines
(no alert behind them) are set on their panel."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from monitoring.alerts import ALERTS
from monitoring.contract import Alert, alert


@dataclass(frozen=True)
class Line:
    """A threshold drawn on a panel: past `value` is bad, above it or (`above=False`) below it."""

    value: float
    above: bool = True
    alert: str | None = None  # None: colouring only, no alert behind it
    condition: str = ""  # when the alert fires, for the panel description: "> 0.25"


def line_of(definition: Alert) -> Line:
    value, op = definition.threshold(), definition.op
    value = int(value) if value.is_integer() else value  # 1, not 1.0, in the JSON
    if op == "==" and value == 0:
        # A 0/1 flag that is bad at 0 (`up == 0`): red below 1, since Grafana's steps start at a value.
        return Line(1, above=False, alert=definition.name, condition=definition.condition())
    return Line(value, above=op != "<", alert=definition.name, condition=definition.condition())


def alert_line(name: str) -> Line:
    """The line of one alert, for a panel that plots its signal besides the panel the alert names."""
    return line_of(alert(name))


def panel_lines(dashboard: str) -> dict[str, list[Line]]:
    """Panel title -> the lines of the alerts that name that panel of `dashboard`."""
    lines: dict[str, list[Line]] = defaultdict(list)
    for definition in ALERTS:
        if definition.dashboard == dashboard and definition.panel:
            lines[definition.panel].append(line_of(definition))
    return dict(lines)
