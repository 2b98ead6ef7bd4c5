"""The monitoring contract's types: one `Alert` per alert rule, its per-profile values, the loader of their
declarations (monitoring/alerts/alerts.yaml), and look-ups.

Modelled on kubernetes-mixin (a config of thresholds + rules generated from it): an alert's threshold, `for`,
severity, texts and the dashboard panel that shows its signal are written once, as data; `make generate`
(monitoring/generate.py) renders prometheus/rules/alerts.yml, the production profile's rules and the docs
tables from it, and the dashboards and simulations import the values (`threshold(...)`).

Templates (expr, summary, description) name params as `{threshold}`: a bare identifier in single braces is
replaced by the value of the profile being rendered, an unknown one is an error. Everything else is left as
written, so PromQL selectors (`{service="ml_api"}`) and Go templates (`{{ $labels.service }}`) need no
escaping. Each numeric param also comes as `{NAME_ms}` (value times 1000, for "250ms") and `{NAME_pct}` (value
times 100, for "5%").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("lab", "production")
# `{threshold}` but not `{{ $value }}` (Go template) nor `{service="x"}` (PromQL selector).
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})")
SEVERITIES = ("critical", "warning")
_SAME = object()


@dataclass(frozen=True)
class P:
    """A value per profile: `P(0.25)` is the same everywhere, `P("45s", production="10m")` differs."""

    lab: Any
    production: Any = _SAME

    def get(self, profile: str = "lab") -> Any:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
        if profile == "production" and self.production is not _SAME:
            return self.production
        return self.lab


@dataclass(frozen=True)
class Alert:
    """One alert rule. `op` + the `threshold` param say what fires (for the docs and dashboards)."""

    name: str
    group: str  # rule group of the rendered file
    service: str  # ml_api | rag_api | lab (the rule's series carry the real `service` label)
    family: str  # a critical mutes the warnings of its family on the same service (Alertmanager)
    severity: str
    expr: str
    summary: str
    description: str
    dashboard: str  # uid of the dashboard that shows the signal
    for_: P
    params: Mapping[str, P] = field(default_factory=dict)
    op: str = ">"  # comparison of the watched value against `threshold`
    panel: str | None = None  # title of the panel that plots the signal (gets the threshold line)
    signal: str = ""  # docs: what the expression watches
    production_note: str = ""  # docs: e.g. "over [5m]" — what else differs in production
    trigger: str = ""  # docs: how to make it fire in the lab
    labels: Mapping[str, str] = field(default_factory=dict)
    comment: str = ""  # rendered as a YAML comment above the rule: why it is built this way

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: severity {self.severity!r} not in {SEVERITIES}")
        if "service" in self.labels:
            raise ValueError(f"{self.name}: `service` comes from the series, not a constant label")

    def values(self, profile: str = "lab") -> dict[str, Any]:
        """The str.format fields of this alert's templates for one profile."""
        fields: dict[str, Any] = {}
        for name, value in self.params.items():
            v = value.get(profile)
            fields[name] = _number(v)
            if isinstance(v, int | float):
                fields[f"{name}_ms"] = _number(v * 1000)
                fields[f"{name}_pct"] = _number(v * 100)
        return fields

    def render(self, template: str, profile: str = "lab") -> str:
        values = self.values(profile)

        def fill(match: re.Match[str]) -> str:
            if match.group(1) not in values:
                raise KeyError(f"{self.name}: template names {match.group(0)}, params are {sorted(values)}")
            return str(values[match.group(1)])

        return _PLACEHOLDER.sub(fill, template)

    def threshold(self, param: str = "threshold", profile: str = "lab") -> float:
        return float(self.params[param].get(profile))

    def condition(self, profile: str = "lab") -> str:
        """`> 0.25`: the docs' and dashboards' reading of when the alert fires."""
        return f"{self.op} {_number(self.params['threshold'].get(profile))}"


def _number(value: Any) -> Any:
    """0.25 stays 0.25, 1.0 prints as 1, 250.00000000000003 as 250: numbers read as written."""
    if isinstance(value, float):
        rounded = round(value, 9)
        return int(rounded) if rounded.is_integer() else rounded
    return value


# The keys an alert takes in a declarations file: Alert's fields, `for` spelt as in Prometheus.
_DECLARED_KEYS = {f.name for f in fields(Alert)} - {"for_"} | {"for"}


def load_alerts(path: Path) -> list[Alert]:
    """The alerts declared in a YAML file (monitoring/alerts/alerts.yaml): top-level `shared` holds the values
    several alerts use (YAML anchors); every other top-level key is an area whose `defaults` apply to each of
    its `alerts`. A per-profile value is a scalar (the same everywhere) or `{lab: …, production: …}`."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        _declared_alert({**section.get("defaults", {}), **entry}, f"{path.name}, area {area}")
        for area, section in document.items()
        if area != "shared"
        for entry in section["alerts"]
    ]


def _declared_alert(entry: Mapping[str, Any], where: str) -> Alert:
    name = entry.get("name", "(no name)")
    unknown = entry.keys() - _DECLARED_KEYS
    if unknown:
        known = sorted(_DECLARED_KEYS)
        raise ValueError(f"{where}: alert {name}: unknown keys {sorted(unknown)}; known: {known}")
    if "for" not in entry:
        raise ValueError(f"{where}: alert {name}: no `for`")
    values = {key: value for key, value in entry.items() if key != "for"}
    values["params"] = {param: _per_profile(value, where) for param, value in entry.get("params", {}).items()}
    try:
        return Alert(**values, for_=_per_profile(entry["for"], where))
    except TypeError as error:  # a required key is missing
        raise ValueError(f"{where}: alert {name}: {error}") from None


def _per_profile(value: Any, where: str) -> P:
    if not isinstance(value, Mapping):
        return P(value)
    if "lab" not in value or not value.keys() <= set(PROFILES):
        raise ValueError(f"{where}: a per-profile value takes `lab` and optionally `production`, got {value}")
    return P(value["lab"], value.get("production", _SAME))


def alerts_by_name() -> dict[str, Alert]:
    from monitoring.alerts import ALERTS  # the registry imports this module's types

    return {alert.name: alert for alert in ALERTS}


def alert(name: str) -> Alert:
    try:
        return alerts_by_name()[name]
    except KeyError:
        raise KeyError(f"no alert {name!r} in the monitoring contract (monitoring/alerts/)") from None


def threshold(name: str, param: str = "threshold", profile: str = "lab") -> float:
    """The value of one alert's param, e.g. `threshold("MLHighLatencyP90")` -> 0.25."""
    return alert(name).threshold(param, profile)
