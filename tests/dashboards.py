"""Helpers over the committed Grafana dashboards: every PromQL query they run, ready for a real Prometheus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"

# Grafana's built-in variables, replaced by values a plain Prometheus API call accepts.
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def load_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard model, for every JSON file in grafana/dashboards/."""
    models = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))
        models[model["uid"]] = model
    return models


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, the ones nested in collapsed rows included."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def template_values(model: dict[str, Any]) -> dict[str, str]:
    """A concrete value per template variable: its `allValue` or current value, else `.*`."""
    values = {}
    for var in model.get("templating", {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if current else None
        if current in (None, "", "$__all"):
            current = var.get("allValue") or ".*"
        values[var["name"]] = str(current)
    return values


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    # Longest names first, so `$instance_id` is not cut by `$instance`; ${name} and ${name:fmt} forms too.
    for name in sorted(variables, key=len, reverse=True):
        expr = re.sub(r"\$\{" + re.escape(name) + r"(?::[a-z]+)?\}", variables[name], expr)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", variables[name], expr)
    return expr


def raw_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) with Grafana's variables left in, annotations included."""
    found = []
    for uid, model in load_dashboards().items():
        for annotation in model.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                found.append((uid, f"annotation: {annotation['name']}", annotation["expr"]))
        for panel in iter_panels(model.get("panels", [])):
            for tgt in panel.get("targets", []):
                if tgt.get("expr"):
                    found.append((uid, panel["title"], tgt["expr"]))
    return found


def grafana_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) for every query, with every `$variable` replaced by a value."""
    models = load_dashboards()
    return [
        (uid, title, substitute(expr, template_values(models[uid]))) for uid, title, expr in raw_queries()
    ]
