"""The registry: every alert of the lab. The static alerts are data, declared once in alerts.yaml (one section
per area: ml, llm, safety, cost, lab; a new alert or area is a few lines there); the anomaly alerts are built
from the watched signals of monitoring/anomaly.py."""

from __future__ import annotations

from pathlib import Path

from monitoring.alerts import anomaly
from monitoring.contract import load_alerts

DECLARATIONS = Path(__file__).with_name("alerts.yaml")
ALERTS = [*load_alerts(DECLARATIONS), *anomaly.ALERTS]
