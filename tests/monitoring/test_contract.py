"""The monitoring contract (monitoring/): generated files are current, look-ups and links work."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from monitoring import generate
from monitoring.alerts import ALERTS
from monitoring.contract import P, alert, alerts_by_name, load_alerts, threshold
from monitoring.render import Links, render_rules

ROOT = Path(__file__).resolve().parents[2]


def test_committed_files_equal_the_generated_output() -> None:
    assert generate.stale() == [], "run `make generate` and commit the result"


def test_a_changed_contract_makes_the_committed_files_stale(tmp_path: Path, monkeypatch) -> None:
    for path in generate.TARGETS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    assert generate.stale(tmp_path) == []
    changed = [*ALERTS[:-1], replace(ALERTS[-1], for_=P("59s"))]
    monkeypatch.setitem(generate.TARGETS, "prometheus/rules/alerts.yml", lambda: render_rules(changed))
    # The rule file and the cluster's copy of it both follow the contract.
    assert generate.stale(tmp_path) == [
        "prometheus/rules/alerts.yml",
        "deploy/kubernetes/overlays/lab/prometheusrule.yaml",
    ]


def test_names_are_unique_and_lookups_read_the_profile() -> None:
    assert len(alerts_by_name()) == len(ALERTS)
    assert threshold("MLHighLatencyP90") == 0.25
    assert threshold("MLHighErrorRatio", profile="production") == 0.01
    assert threshold("MLHighErrorRatio", param="min_rate") == 0.05
    with pytest.raises(KeyError, match="NoSuchAlert"):
        threshold("NoSuchAlert")
    with pytest.raises(ValueError, match="profile"):
        P(1).get("staging")


@pytest.mark.parametrize("profile", ["lab", "production"])
def test_every_rendered_expression_carries_its_threshold(profile: str) -> None:
    for a in ALERTS:
        expr = " ".join(a.render(a.expr, profile).split())
        assert f"{a.op} {a.values(profile)['threshold']}" in expr, (a.name, expr)


def test_every_alert_names_a_dashboard_panel_that_exists() -> None:
    panels = {}
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        model = json.loads(path.read_text())
        titles = {p["title"] for p in model["panels"]}
        titles |= {p["title"] for row in model["panels"] for p in row.get("panels", [])}
        panels[model["uid"]] = titles
    for a in ALERTS:
        assert a.dashboard in panels, a.name
        assert a.panel is None or a.panel in panels[a.dashboard], (a.name, a.panel)


def test_links_follow_one_pattern_each_and_fall_back_to_prometheus() -> None:
    a = alert("MLHighLatencyP90")
    links = Links(
        runbook_base="http://127.0.0.1:19099/runbooks",
        dashboard_base=None,
        prometheus_base="http://127.0.0.1:19090",
        prometheus_graph_path="/classic/graph",
    )
    assert links.runbook(a) == "http://127.0.0.1:19099/runbooks#mlhighlatencyp90"
    url = urlparse(links.dashboard(a))
    assert (url.netloc, url.path) == ("127.0.0.1:19090", "/classic/graph")
    expr = parse_qs(url.query)["g0.expr"][0]
    assert expr.startswith('service:http_request_duration_seconds:p90_rate1m{service="ml_api"} > 0.25 and'), (
        expr
    )
    rendered = yaml.safe_load(render_rules(ALERTS, links=links))
    urls = {r["annotations"]["dashboard_url"] for g in rendered["groups"] for r in g["rules"]}
    assert all(u.startswith("http://127.0.0.1:19090/classic/graph?g0.expr=") for u in urls)


def test_rule_group_names_are_unique_across_rule_files() -> None:
    """A PrometheusRule (and any single rule file) holding every group rejects a repeated group name."""
    names = [
        group["name"]
        for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("{name: X, severity: warning, for: 1m, treshold: 1}", r"alert X: unknown keys \['treshold'\]"),
        ("{name: X, severity: warning}", "alert X: no `for`"),
        ("{name: X, for: {lab: 1m, staging: 5m}}", "takes `lab` and optionally `production`"),
        ("{name: X, for: 1m}", "alert X: .*missing"),
    ],
)
def test_a_bad_declaration_names_the_alert_and_the_key(tmp_path: Path, entry: str, error: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(f"shared: {{}}\nml:\n  alerts:\n    - {entry}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=error):
        load_alerts(path)
