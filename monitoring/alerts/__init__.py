"""The registry: every alert of the lab, one module per area. A new area = a module + one line here."""

from __future__ import annotations

from monitoring.alerts import anomaly, cost, lab, llm, ml, safety

ALERTS = [*ml.ALERTS, *llm.ALERTS, *safety.ALERTS, *cost.ALERTS, *lab.ALERTS, *anomaly.ALERTS]
