"""Static checks of the Grafana dashboards and provisioning: no Grafana or Prometheus needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard as SDKDashboard

from grafana.builder import board, registry
from grafana.builder.panels import steps
from grafana.builder.texts import Texts, parse
from grafana.builder.thresholds import Line, alert_line, line_of, panel_lines
from monitoring import generate
from monitoring.alerts import ALERTS
from tests.dashboards import DASHBOARD_DIR, ROOT, grafana_queries, iter_panels, load_dashboards, raw_queries

DS = {"type": "prometheus", "uid": "prometheus"}
UIDS = {"ml-service", "llm-quality", "llm-safety", "llm-cost", "pipeline-health"}
# Prometheus' and Alertmanager's own series the pipeline dashboard reads.
PLATFORM_METRICS = {
    "up",
    "ALERTS",
    "alertmanager_notifications_total",
    "alertmanager_notifications_failed_total",
    "prometheus_rule_evaluation_failures_total",
}
_PROMQL_WORDS_TEXT = """
sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
by without on ignoring group_left group_right bool and or unless offset atan2 inf nan
abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
day_of_year days_in_month delta deriv exp floor histogram_quantile histogram_count histogram_sum
histogram_fraction histogram_avg holt_winters hour idelta increase irate label_join label_replace
ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt time
timestamp vector year avg_over_time min_over_time max_over_time sum_over_time count_over_time
quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time
"""
# Aggregations, keywords and functions: never metric names even when followed by a space.
PROMQL_WORDS = set(_PROMQL_WORDS_TEXT.split())
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def contract_metrics() -> dict[str, str]:
    """name -> type from the tables of docs/metrics.md."""
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(\w+)\s*\|", text, re.MULTILINE))


def recording_rules() -> set[str]:
    names: set[str] = set()
    for name in ("recording.yml", "anomaly.yml"):
        path = ROOT / "prometheus" / "rules" / name
        if path.exists():
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            names |= {r["record"] for group in doc.get("groups", []) for r in group["rules"] if "record" in r}
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside strings, label sets, ranges and groupings,
    not followed by `(` (a function call), not PromQL words or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?=\s*([{\[)\s,*/+\-<>=!^%]|$))", expr):
        word = match.group(1)
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def allowed_metrics() -> set[str]:
    allowed = set(PLATFORM_METRICS) | recording_rules()
    for name, kind in contract_metrics().items():
        allowed.add(name)
        if kind == "histogram":
            allowed.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return allowed


def query_panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(model["panels"]) if p["type"] != "row"]


# ------------------------------------------------------------------------------------------------ tests
def test_every_committed_dashboard_is_generated() -> None:
    """tests/monitoring/test_contract.py checks each generated file is current;
    here: no dashboard JSON is hand-kept."""
    generated = {Path(path).stem for path in generate.TARGETS if path.startswith("grafana/dashboards/")}
    assert generated == {b.uid for b in registry.BOARDS} == UIDS
    assert {p.stem for p in DASHBOARD_DIR.glob("*.json")} == UIDS


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{prefix}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{prefix}[{i}]").items()}
    return {prefix: value}


def test_only_the_prometheus_annotation_fields_are_outside_the_sdk_model() -> None:
    """Everything else round-trips through grafana-foundation-sdk's dashboard model (board.PromAnnotation
    adds the four fields its AnnotationQuery lacks)."""
    register_default_plugins()
    outside = set()
    for model in load_dashboards().values():
        written = leaves(model)
        kept = leaves(json.loads(JSONEncoder().encode(SDKDashboard.from_json(model))))
        outside |= {re.sub(r"\[\d+\]", "[]", k) for k, v in written.items() if kept.get(k, written) != v}
    fields = {"step", "titleFormat", "textFormat", "useValueForTime"}
    assert outside == {f".annotations.list[].{name}" for name in fields}


def test_drift_texts_name_the_tests_the_lab_runs_not_evidently() -> None:
    """ml_api computes KS, chi-square and Jensen-Shannon itself (ml_api/drift.py), not Evidently."""
    texts = " ".join(
        p["description"]
        for m in load_dashboards().values()
        for p in iter_panels(m["panels"])
        if "description" in p
    )
    assert "evidently" not in texts.lower()
    assert "Kolmogorov-Smirnov" in texts and "chi-square" in texts and "Jensen-Shannon" in texts


def test_metric_name_parser() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, endpoint) (rate(a_bucket{status=~"5..", x="y z"}[5m])))'
        " / ignoring(job) b_total + on(instance) group_left(version) c_info"
        " * scalar(d) > bool 0.5 or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c_info", "d"}
    assert metric_names("up") == {"up"}
    assert metric_names('count(ALERTS{alertstate="firing"}) or vector(0)') == {"ALERTS"}
    assert metric_names("sum(rate(x[$__rate_interval])) * 3600") == {"x"}


def test_every_dashboard_has_uid_title_tags_and_links_to_the_others() -> None:
    models = load_dashboards()
    assert set(models) == UIDS
    for uid, model in models.items():
        assert model["title"] and model["description"]
        assert "observability-lab" in model["tags"]
        linked = {link["url"] for link in model["links"]}
        assert linked == {f"/d/{other}" for other in UIDS - {uid}}, uid
        assert all(link["keepTime"] for link in model["links"])


def test_every_panel_uses_the_prometheus_datasource_by_uid_and_has_a_description() -> None:
    for uid, model in load_dashboards().items():
        panels = query_panels(model)
        assert len(panels) >= 10, uid
        for panel in panels:
            where = f"{uid} / {panel.get('title')}"
            assert panel["datasource"] == DS, where
            assert len(panel.get("description", "")) >= 20, where
            assert panel["targets"], where
            for tgt in panel["targets"]:
                assert tgt.get("datasource", DS) == DS, where
                assert tgt["expr"].strip(), where
            assert panel["fieldConfig"]["defaults"].get("unit", "short") or panel["type"] != "timeseries"
        for row in iter_panels(model["panels"]):
            if row["type"] == "row":
                assert not row.get("targets"), f"{uid}: a row holds no queries"
        # Datasource by name or by ${DS_...} import placeholders breaks provisioning: only the uid is allowed.
        text = (DASHBOARD_DIR / f"{uid}.json").read_text(encoding="utf-8")
        assert "${DS_" not in text and '"datasource": "Prometheus"' not in text


def test_panel_ids_unique_and_grid_does_not_overlap() -> None:
    for uid, model in load_dashboards().items():
        panels = list(iter_panels(model["panels"]))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), uid
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{uid}/{panel['title']}"
            area = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & area, f"{uid}/{panel['title']} overlaps another panel"
            cells |= area


def test_every_query_uses_only_contract_or_platform_metrics() -> None:
    allowed = allowed_metrics()
    assert "ml_http_requests_total" in allowed and "llm_groundedness_score_bucket" in allowed
    unknown = {
        (uid, title, name) for uid, title, expr in raw_queries() for name in metric_names(expr) - allowed
    }
    assert not unknown, f"metric names not in docs/metrics.md: {sorted(unknown)}"


def test_dashboards_cover_every_contract_metric() -> None:
    used = {name for _, _, expr in raw_queries() for name in metric_names(expr)}
    used_bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    missing = [name for name in contract_metrics() if name not in used and name not in used_bases]
    assert not missing, f"contract metrics no dashboard shows: {missing}"


def test_feature_heatmaps_use_heatmap_format_over_buckets() -> None:
    model = load_dashboards()["ml-service"]
    heatmaps = [p for p in query_panels(model) if p["type"] == "heatmap"]
    features = [name for name in contract_metrics() if name.startswith("ml_feature_") and "drift" not in name]
    assert len(features) == 4
    for feature in features:
        panel = next((p for p in heatmaps if f"{feature}_bucket" in p["targets"][0]["expr"]), None)
        assert panel is not None, f"no heatmap for {feature}"
        tgt = panel["targets"][0]
        assert tgt["format"] == "heatmap"
        assert re.fullmatch(rf"sum by \(le\) \(rate\({feature}_bucket\[\$__rate_interval\]\)\)", tgt["expr"])
        assert panel["options"]["calculate"] is False


def panel_steps(panel: dict[str, Any]) -> set[float]:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    return {step["value"] for step in steps if step["value"] is not None}


def test_each_alert_threshold_is_drawn_on_the_panel_its_definition_names() -> None:
    models = load_dashboards()
    named = [a for a in ALERTS if a.panel]
    assert len(named) >= 15
    for a in named:
        panels = [p for p in query_panels(models[a.dashboard]) if p["title"] == a.panel]
        assert len(panels) == 1, f"{a.name}: {a.dashboard} has no single panel {a.panel!r}"
        line = line_of(a)
        assert line.value in panel_steps(panels[0]), f"{a.name}: {line.value} not drawn on {a.panel}"
        assert f"`{a.name}` alert threshold ({a.condition()})" in panels[0]["description"], a.name


def test_alert_lines_read_the_contract_and_its_direction() -> None:
    assert alert_line("MLHighLatencyP90") == Line(0.25, True, "MLHighLatencyP90", "> 0.25")
    assert alert_line("LLMGroundednessLow").above is False
    # `up == 0`: red below 1, green at 1 (Grafana steps start at a value).
    assert alert_line("TargetDown") == Line(1, False, "TargetDown", "== 0")
    assert panel_lines("ml-service")["Prediction latency percentiles"] == [
        alert_line("MLHighLatencyP90"),
        alert_line("MLHighLatencyP99"),
    ]


def colours(lines: list[Line]) -> list[tuple[str, float | None]]:
    return [(step.color, step.value) for step in steps(lines).build().steps]


def test_threshold_steps_keep_every_line() -> None:
    assert colours([]) == [("green", None)]
    assert colours([Line(2), Line(0.5), Line(1)]) == [
        ("green", None),
        ("orange", 0.5),
        ("orange", 1),
        ("red", 2),
    ]
    assert colours([Line(0.5, above=False), Line(0.3, above=False)]) == [
        ("red", None),
        ("orange", 0.3),
        ("green", 0.5),
    ]
    with pytest.raises(ValueError, match="both directions"):
        steps([Line(1), Line(2, above=False)])


def test_an_alert_naming_a_panel_the_dashboard_lacks_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = {"No such panel": [Line(1, alert="SomeAlert")]}
    monkeypatch.setattr(board, "panel_lines", lambda uid: dict(lines))
    with pytest.raises(ValueError, match="No such panel"):
        registry.build()


def test_dashboard_texts_parse_into_title_description_and_panel_sections() -> None:
    texts = parse(
        "# Board\n\nWhat it shows,\nover two lines.\n\n## Panel A\n\nFirst line\nsecond.\n\n## B\nB.\n"
    )
    assert texts.title == "Board"
    assert texts.description == "What it shows, over two lines."
    assert texts.panels == {"Panel A": "First line second.", "B": "B."}
    with pytest.raises(ValueError, match="twice"):
        parse("## A\nx\n## A\ny\n")


def edited_texts(monkeypatch: pytest.MonkeyPatch, edit) -> None:
    """Make every dashboard's texts/<uid>.md read as `edit(panel texts)` for this test."""
    real = board.texts

    def patched(uid: str) -> Texts:
        texts = real(uid)
        return Texts(texts.title, texts.description, edit(dict(texts.panels)))

    monkeypatch.setattr(board, "texts", patched)


def test_words_for_a_panel_the_dashboard_lacks_fail_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    edited_texts(monkeypatch, lambda panels: {**panels, "Ghost panel": "Words for no panel."})
    with pytest.raises(ValueError, match="Ghost panel"):
        registry.build()


def test_a_panel_without_words_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    edited_texts(monkeypatch, lambda panels: {k: v for k, v in panels.items() if k != "Triage latency"})
    with pytest.raises(ValueError, match="Triage latency"):
        registry.build()


def test_grafana_queries_are_concrete_and_valid_promql(tmp_path: Path) -> None:
    queries = grafana_queries()
    assert len(queries) == len(raw_queries()) >= 60
    assert {uid for uid, _, _ in queries} == UIDS
    for uid, title, expr in queries:
        assert "$" not in expr, f"{uid}/{title}: unsubstituted variable in {expr}"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    # promtool parses every expression of a rules file: each query becomes one recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [{"record": f"dashboard:query{i}", "expr": q[2]} for i, q in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_at_the_dashboards_and_the_fixed_datasource_uid() -> None:
    prov = ROOT / "grafana" / "provisioning"
    datasources = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"]
    by_uid = {d["uid"]: d for d in datasources}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "${PROMETHEUS_URL}"
    assert [d["uid"] for d in datasources if d.get("isDefault")] == ["prometheus"]
    # $__rate_interval needs Grafana to know the scrape interval.
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert by_uid["prometheus"]["jsonData"]["timeInterval"] == scrape
    providers = yaml.safe_load((prov / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    # docker compose mounts grafana/dashboards there (tests/deploy/test_compose.py checks the mount).
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"
