"""`...MetricAnomaly` alerts: a signal left its robust baseline (monitoring/anomaly.py), whatever its level.

One alert per watched signal that has one (`Signal.alert`); its series carry `anomaly_name` and `anomaly_type`
(spike, drop, level_shift, ramp). A warning, guarded by the signal's traffic rate, and muted in Alertmanager
by the static alert of the same signal (an inhibit rule per signal in alertmanager/alertmanager.yml): the
anomaly alert speaks when the static threshold is still silent, e.g. during a slow ramp.
"""

from __future__ import annotations

from monitoring.anomaly import ALERT_SCORE, K_TYPE, PROFILES, SIGNALS, Signal, Windows, seconds
from monitoring.contract import Alert, P

FOR = P("30s", production="10m")
BASELINE_SHARE = 0.5  # share of the baseline window that must hold samples before the alert may speak


def baseline_params() -> dict[str, P]:
    """The baseline window per profile, and how many samples of it make a baseline: a young lab's first
    minutes (rag_api answers in seconds while its caches warm) are not a reference for what follows."""
    lab, production = PROFILES["lab"], PROFILES["production"]

    def enough(w: Windows) -> int:
        return int(seconds(w.baseline) / seconds(w.resolution) * BASELINE_SHARE)

    return {
        "baseline": P(lab.baseline, production=production.baseline),
        "resolution": P(lab.resolution, production=production.resolution),
        "gap": P(lab.gap, production=production.gap),
        "min_samples": P(enough(lab), production=enough(production)),
    }


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
            f"and on (service) ({signal.guard})\n"
            # The baseline's own subquery (monitoring/anomaly.py): steps of it that hold a sample.
            f'and on (service) count_over_time((anomaly:signal{{anomaly_name="{signal.name}"}})'
            "[{baseline}:{resolution}] offset {gap}) >= {min_samples}"
        ),
        op=">=",
        params={"threshold": P(ALERT_SCORE), **baseline_params()},
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
