"""Request metrics stay bounded and keep admin calls out of the serving error ratio (issue 11 findings 3, 15).

A sweep of every route and random paths with every method must add at most one histogram per (route,
method) the app serves, plus one for everything it does not: 404s and 405s share a label pair. Admin routes
(those taking X-Admin-Token) must be excluded from the recording rules' request and 5xx rates, or an
unauthenticated client can fire the error-ratio alerts by failing them.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Iterator
from pathlib import Path

import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from lab_common.metrics import UNMATCHED, UNMATCHED_METHOD

ROOT = Path(__file__).resolve().parents[2]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "X-SCAN"]


def histogram_children(metric: str) -> set[tuple[str, str]]:
    """(endpoint, method) pairs the latency histogram has a series set for."""
    return {
        (sample.labels["endpoint"], sample.labels["method"])
        for family in REGISTRY.collect()
        if family.name == metric
        for sample in family.samples
        if sample.name.endswith("_count")
    }


def served_pairs(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (route.path, method)
        for route in app.routes
        if hasattr(route, "methods") and route.methods
        for method in route.methods
    }


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_a_sweep_of_routes_and_random_paths_times_methods_adds_bounded_series(
    apps: dict[str, FastAPI],
) -> None:
    app = apps[
        "ml_api"
    ]  # rag_api's /knowledge/reload would index the corpus; the labels are the same layer's
    client = TestClient(app, raise_server_exceptions=False)
    metric = "ml_http_request_duration_seconds"
    before = histogram_children(metric)
    rng = random.Random(11)
    paths = {concrete(route.path) for route in app.routes if hasattr(route, "path")}
    paths |= {
        "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=rng.randint(1, 20))) for _ in range(60)
    }
    paths -= {"/metrics"}  # scraping is not counted
    for path in sorted(paths):
        for method in METHODS:
            client.request(method, path)
    added = histogram_children(metric) - before
    allowed = served_pairs(app) | {(UNMATCHED, UNMATCHED_METHOD)}
    assert added <= allowed, f"series for pairs the app does not serve: {sorted(added - allowed)}"
    assert (UNMATCHED, UNMATCHED_METHOD) in histogram_children(metric)


def expressions(node: object) -> Iterator[str]:
    """Every `expr` string of a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def excluded_endpoint_patterns() -> list[re.Pattern[str]]:
    """Every `endpoint!~"..."` matcher over the services' request counters, in the recording rules and
    in the dashboards' error-ratio panels."""
    rules = yaml.safe_load((ROOT / "prometheus" / "rules" / "recording.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for dashboard in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        exprs += expressions(json.loads(dashboard.read_text()))
    return [
        re.compile(f"^(?:{regex})$")  # PromQL regexes are anchored
        for expr in exprs
        for regex in re.findall(r'_http_requests_total\{[^}]*endpoint!~"([^"]+)"', expr)
    ]


def admin_paths(app: FastAPI) -> set[str]:
    """Routes behind require_admin: OpenAPI shows their X-Admin-Token parameter."""
    schema = app.openapi()
    return {
        path
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        if any(p.get("name") == "x-admin-token" for p in operation.get("parameters", []))
    }


def test_admin_routes_are_out_of_the_serving_request_and_error_rates(apps: dict[str, FastAPI]) -> None:
    patterns = excluded_endpoint_patterns()
    assert len(patterns) >= 6, "the request and 5xx rates of both services exclude probes and admin routes"
    for name, app in apps.items():
        admin = admin_paths(app)
        assert {"/admin/faults", "/admin/faults/{name}"} <= admin
        for pattern in patterns:
            missed = sorted(p for p in admin if not pattern.match(p))
            assert not missed, (
                f"{name}: admin routes counted in the serving rates by {pattern.pattern}: {missed}"
            )


def test_serving_routes_stay_in_the_rates(apps: dict[str, FastAPI]) -> None:
    serving = {
        "/predict",
        "/predict/batch",
        "/triage",
        "/chat",
        "/model",
        "/drift/status",
        "/knowledge/stats",
    }
    for pattern in excluded_endpoint_patterns():
        counted = {
            p for app in apps.values() for r in app.routes if isinstance(r, APIRoute) for p in [r.path]
        }
        assert not {p for p in serving & counted if pattern.match(p)}, pattern.pattern
