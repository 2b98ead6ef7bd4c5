"""`...MetricAnomaly` alerts: a signal left its robust baseline (monitoring/anomaly.py), whatever its level.

One alert per watched signal that has one (`Signal.alert`); its series carry `anomaly_name` and `anomaly_type`
(spike, drop, level_shift, ramp). A warning, guarded by the signal's traffic rate, and muted in Alertmanager
by the static alert of the same signal (an inhibit rule per signal in alertmanager/alertmanager.yml): the
anomaly alert speaks when the static threshold is still silent, e.g. during a slow ramp.
"""

from __future__ import annotations

from monitoring.anomaly import ALERT_SCORE, K_TYPE, PROFILES, SIGNALS, Signal
from monitoring.contract import Alert, P

FOR = P("30s", production="10m")


def anomaly_alert(signal: Signal) -> Alert:
    types = "|".join(signal.types)
    lab, production = PROFILES["lab"], PROFILES["production"]
    return Alert(
        name=signal.alert,
        group="anomaly",
        service="lab",
        family="anomaly",
        severity="warning",
        expr=(
            f'anomaly:score_by_type{{anomaly_name="{signal.name}", anomaly_type=~"{types}"}}'
            " >= {threshold}\n"
            f"and on (service) ({signal.guard})"
        ),
        op=">=",
        params={"threshold": P(ALERT_SCORE)},
        for_=FOR,
        summary=(
            f"Unusual {signal.name} on {{{{ $labels.service }}}}: {{{{ $labels.anomaly_type }}}} "
            "against its recent baseline"
        ),
        description=(
            f"The {signal.description} left its robust baseline (median and spread of the last "
            f"{lab.baseline}, production {production.baseline}): anomaly score "
            '{{ printf "%.2f" $value }} (0.5 = '
            f"{K_TYPE['level_shift']:g} spreads for a level shift or a ramp, "
            f"{K_TYPE['spike']:g} for a single point). The static threshold of this signal may still be "
            "silent: compare the bands on the dashboard."
        ),
        dashboard=signal.dashboard,
        panel="Anomalies",
        signal=f'`anomaly:score_by_type{{anomaly_name="{signal.name}"}}` ({", ".join(signal.types)})',
        production_note=f"baseline {production.baseline}, daily seasonality",
        trigger=signal.trigger,
        labels={"anomaly_name": signal.name},
    )


ALERTS = [anomaly_alert(signal) for signal in SIGNALS if signal.alert]
