"""Panels every service's dashboard has (rate, errors, duration: RED), written once for any service."""

from __future__ import annotations

from dataclasses import dataclass

from .panels import RI, TimeSeries, quantiles, rate_by, target, timeseries

# Probe and admin endpoints (every route taking X-Admin-Token) are left out of request ratios, as the
# recording rules do (tests/lab_common/test_request_labels.py checks both).
NOT_PROBES = 'endpoint!~"/health|/ready|/metrics|/admin/.*|/drift/reset|/knowledge/reload"'


@dataclass(frozen=True)
class Service:
    """A lab service as its metrics name it: `ml_api` exports `ml_http_requests_total`, ..."""

    name: str
    prefix: str

    def metric(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}"


ML_API = Service("ml_api", "ml")
RAG_API = Service("rag_api", "rag")
RECEIVER = Service("receiver", "receiver")


def requests_by_status(service: Service) -> TimeSeries:
    query = rate_by(service.metric("http_requests_total"), "endpoint, status")
    return timeseries("Requests per second by endpoint and status", [query], unit="reqps", stack=True)


def error_ratio(service: Service) -> TimeSeries:
    requests = service.metric("http_requests_total")
    # `or vector(0)`: no 5xx yet is a ratio of 0, not a missing series.
    errors = f'(sum(rate({requests}{{status=~"5..", {NOT_PROBES}}}[{RI}])) or vector(0))'
    ratio = target(f"{errors} / sum(rate({requests}{{{NOT_PROBES}}}[{RI}]))", "5xx share")
    return timeseries("5xx error ratio", [ratio], unit="percentunit", minimum=0)


def p90_by_endpoint(service: Service) -> TimeSeries:
    p90 = quantiles(service.metric("http_request_duration_seconds"), (0.9,), by="endpoint")
    return timeseries("p90 latency by endpoint", p90, unit="s")
