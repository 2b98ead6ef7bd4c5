"""ml_api alerts: input and prediction drift, serving latency and errors, degraded /triage."""

from __future__ import annotations

from monitoring.contract import Alert, P

# Ratios and percentiles only count with traffic: > 0.05 requests (or scored answers) a second, i.e. three a
# minute, so nothing fires on an idle lab and one slow request on a quiet service is not "p99 above 1 s".
MIN_RATE = P(0.05)
# A warning waits longer than the critical of its family (lab: 15 s, three evaluations), or it can reach
# Alertmanager in the same batch and slip past the inhibition (docs/alerts.md).
WARNING_FOR = P("45s", production="10m")
DRIFT_WARNING_FOR = P("45s", production="20m")  # MLDataDriftDetected waits 15m in production

ALERTS = [
    Alert(
        name="MLDataDriftDetected",
        group="ml_drift",
        service="ml_api",
        family="drift",
        severity="critical",
        expr=(
            "max by (service) (ml_drifted_features_ratio)\n"
            "and on (service) (max by (service) (ml_dataset_drift_detected) == {threshold})"
        ),
        op="==",
        params={"threshold": P(1)},
        for_=P("30s", production="15m"),
        summary="Data drift on {{ $labels.service }}: the inputs no longer look like the training data",
        description=(
            "{{ $value | humanizePercentage }} of the input features drifted against the training reference "
            "(dataset drift rule: at least half of them). Predictions are made outside the conditions the "
            "model was validated for."
        ),
        dashboard="ml-service",
        panel="Dataset drift",
        signal=(
            "`ml_dataset_drift_detected` (share of drifted features ≥ 0.5); "
            "value: `ml_drifted_features_ratio`"
        ),
        production_note="with a drift window ≥ 500 tickets",
        trigger="drift simulation: shifted tickets (several features) until the drift window is full",
    ),
    Alert(
        name="MLFeatureDrift",
        group="ml_drift",
        service="ml_api",
        family="drift",
        severity="warning",
        expr=(
            "max by (service, feature) (ml_feature_drift_score)\n"
            "and on (service, feature) (max by (service, feature) (ml_feature_drift_detected) == {threshold})"
        ),
        op="==",
        params={"threshold": P(1)},
        for_=DRIFT_WARNING_FOR,
        summary="Feature {{ $labels.feature }} drifted on {{ $labels.service }}",
        description=(
            "The distribution of {{ $labels.feature }} differs significantly from the training reference "
            '(drift score {{ printf "%.2f" $value }}; 0 = identical, 1 = no overlap).'
        ),
        dashboard="ml-service",
        panel="Drifted features",
        signal="`ml_feature_drift_detected` per `feature`; value: that feature's KS distance",
        trigger="drift simulation shifting one feature (e.g. longer tickets)",
    ),
    Alert(
        name="MLPredictionDrift",
        group="ml_drift",
        service="ml_api",
        family="drift",
        severity="warning",
        expr="max by (service) (ml_prediction_drift_score) > {threshold}",
        params={"threshold": P(0.15, production=0.1)},
        for_=DRIFT_WARNING_FOR,
        summary="Predicted severities on {{ $labels.service }} are distributed unlike the reference",
        description=(
            'Jensen-Shannon distance {{ printf "%.2f" $value }} between the predicted-class distribution of '
            "the drift window and the reference predictions (threshold {threshold})."
        ),
        dashboard="ml-service",
        panel="Prediction drift score",
        signal="Jensen-Shannon distance of the predicted-class distribution vs the reference",
        production_note="with a drift window ≥ 500 tickets",
        trigger="traffic skewed to one severity (e.g. only urgent, high-impact tickets)",
    ),
    Alert(
        name="MLHighLatencyP90",
        group="ml_serving",
        service="ml_api",
        family="latency",
        severity="warning",
        expr=(
            'service:http_request_duration_seconds:p90_rate1m{service="ml_api"} > {threshold}\n'
            "and on (service) service:http_request_duration_seconds_count:rate1m > {min_rate}"
        ),
        params={"threshold": P(0.25), "min_rate": MIN_RATE},
        for_=WARNING_FOR,
        summary="Slow predictions on {{ $labels.service }}: p90 above {threshold_ms}ms",
        description=(
            "90th percentile latency of /predict and /predict/batch is {{ $value | humanizeDuration }} "
            "over the last minute."
        ),
        dashboard="ml-service",
        panel="Prediction latency percentiles",
        signal=(
            "p90 of ml_api `/predict` + `/predict/batch` (`service:http_request_duration_seconds:p90_rate1m`)"
        ),
        production_note="over `[5m]`",
        trigger="ml_api `latency` fault, `delay_ms` 300 (p90 ≈ 0.48 s; p99 stays under 1 s)",
    ),
    Alert(
        name="MLHighLatencyP99",
        group="ml_serving",
        service="ml_api",
        family="latency",
        severity="critical",
        expr=(
            'service:http_request_duration_seconds:p99_rate1m{service="ml_api"} > {threshold}\n'
            "and on (service) service:http_request_duration_seconds_count:rate1m > {min_rate}"
        ),
        params={"threshold": P(1), "min_rate": MIN_RATE},
        for_=P("30s", production="5m"),
        summary="Very slow predictions on {{ $labels.service }}: p99 above {threshold}s",
        description=(
            "99th percentile latency of /predict and /predict/batch is {{ $value | humanizeDuration }} "
            "over the last minute."
        ),
        dashboard="ml-service",
        panel="Prediction latency percentiles",
        signal="p99 of the same histogram",
        production_note="over `[5m]`",
        trigger="ml_api `latency` fault, `delay_ms` ≥ 1000 (mutes `MLHighLatencyP90`)",
    ),
    Alert(
        name="MLHighErrorRatio",
        group="ml_serving",
        service="ml_api",
        family="errors",
        severity="critical",
        expr=(
            'service:http_requests_5xx:ratio_rate1m{service="ml_api"} > {threshold}\n'
            "and on (service) service:http_requests:rate1m > {min_rate}"
        ),
        params={"threshold": P(0.05, production=0.01), "min_rate": MIN_RATE},
        for_=P("30s", production="5m"),
        summary="{{ $labels.service }} answers 5xx to more than {threshold_pct}% of requests",
        description=(
            "{{ $value | humanizePercentage }} of the requests over the last minute ended in a 5xx answer."
        ),
        dashboard="ml-service",
        panel="5xx error ratio",
        signal="5xx answers / all requests of ml_api, probes and admin calls excluded",
        production_note="over `[5m]`",
        trigger="ml_api `errors` fault, `rate` ≥ 0.2 (503s)",
    ),
    Alert(
        name="TriageDegraded",
        group="ml_serving",
        service="ml_api",
        family="triage",
        severity="warning",
        expr=(
            "service:triage_requests_degraded:ratio_rate1m > {threshold}\n"
            "and on (service) service:triage_requests:rate1m > {min_rate}"
        ),
        params={"threshold": P(0.2, production=0.05), "min_rate": MIN_RATE},
        for_=WARNING_FOR,
        summary="/triage on {{ $labels.service }} falls back to the prediction only",
        description=(
            "{{ $value | humanizePercentage }} of the /triage calls over the last minute got no RAG "
            "explanation (timeout, unavailable or error)."
        ),
        dashboard="pipeline-health",
        panel="Triage degraded ratio",
        signal="`/triage` calls that fell back to the prediction only / all `/triage` calls",
        production_note="over `[5m]`",
        trigger=(
            "rag_api `latency` fault longer than ml_api's triage RAG timeout "
            "(`ML_TRIAGE_RAG_TIMEOUT_SECONDS`, 2 s), e.g. `delay_ms` 3000, or rag_api stopped"
        ),
    ),
]
