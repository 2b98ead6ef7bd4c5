"""labctl: configuration rendering (ports, targets, rules, Alertmanager) and `status` with nothing running."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labctl import config as cfg
from labctl.config import ROOT, Ports
from tests.support.lab import run_labctl

PORTS = Ports(
    ml_api=18000,
    rag_api=18001,
    prometheus=19090,
    alertmanager=19093,
    receiver_http=19099,
    receiver_smtp=12525,
    grafana=13000,
    pushgateway=19091,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------- ports


def test_ports_from_env_defaults_and_overrides() -> None:
    assert Ports.from_env({}) == Ports()
    assert Ports.from_env({}).as_dict() == {
        "ml_api": 8000,
        "rag_api": 8001,
        "prometheus": 9090,
        "alertmanager": 9093,
        "receiver_http": 9099,
        "receiver_smtp": 2525,
        "grafana": 3000,
        "pushgateway": 9091,
    }
    ports = Ports.from_env({"ML_PORT": "8100", "PROMETHEUS_PORT": " 9190 ", "RAG_PORT": ""})
    assert (ports.ml_api, ports.prometheus, ports.rag_api) == (8100, 9190, 8001)


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_ports_from_env_rejects_non_ports(value: str) -> None:
    with pytest.raises(ValueError, match="ML_PORT"):
        Ports.from_env({"ML_PORT": value})


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = Ports.free().as_dict().values()
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < 65536 for p in ports)


def test_rewrite_ports_only_touches_local_default_ports() -> None:
    text = (
        "127.0.0.1:8000 localhost:9093 10.0.0.1:8000 ml-api:8000 127.0.0.1:4242 http://127.0.0.1:9099/slack"
    )
    assert cfg.rewrite_ports(text, PORTS.replacements()) == (
        "127.0.0.1:18000 localhost:19093 10.0.0.1:8000 ml-api:8000 127.0.0.1:4242 http://127.0.0.1:19099/slack"
    )


# ------------------------------------------------------------------------------------------------- render


def test_render_targets_rewrites_every_file_sd_file(tmp_path: Path) -> None:
    src = tmp_path / "native"
    write(src / "ml_api.yml", "- targets: ['127.0.0.1:8000']\n  labels: {service: ml-api}\n")
    write(src / "rag.json", '[{"targets": ["localhost:8001"]}]')
    write(src / "README.md", "127.0.0.1:8000")
    out = cfg.render_targets(src, tmp_path / "out", PORTS)
    assert sorted(p.name for p in out) == ["ml_api.yml", "rag.json"]
    assert yaml.safe_load((tmp_path / "out" / "ml_api.yml").read_text()) == [
        {"targets": ["127.0.0.1:18000"], "labels": {"service": "ml-api"}}
    ]
    assert "localhost:18001" in (tmp_path / "out" / "rag.json").read_text()


PROMETHEUS_YML = """
global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 15s
rule_files:
  - rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:9093']
scrape_configs:
  - job_name: ml-api
    scrape_interval: 5s
    file_sd_configs:
      - files: ['targets/native/ml_api.yml']
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
"""


def test_render_prometheus_config(tmp_path: Path) -> None:
    src = write(tmp_path / "repo" / "prometheus.yml", PROMETHEUS_YML)
    out = cfg.render_prometheus_config(
        src,
        tmp_path / "run" / "prometheus.yml",
        ports=PORTS,
        targets_dir=tmp_path / "run" / "targets",
        rules_dir=tmp_path / "short-rules",
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    rendered = yaml.safe_load(out.read_text())
    assert rendered["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    assert rendered["rule_files"] == [str(tmp_path / "short-rules" / "*.yml")]
    assert rendered["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]
    ml, prom = rendered["scrape_configs"]
    assert ml["scrape_interval"] == "1s"
    assert ml["file_sd_configs"][0]["files"] == [str(tmp_path / "run" / "targets" / "ml_api.yml")]
    assert prom["static_configs"][0]["targets"] == ["localhost:19090"]


def test_render_prometheus_config_keeps_intervals_and_resolves_rules(tmp_path: Path) -> None:
    src = write(tmp_path / "repo" / "prometheus.yml", PROMETHEUS_YML)
    out = cfg.render_prometheus_config(src, tmp_path / "p.yml", ports=Ports(), targets_dir=tmp_path / "t")
    rendered = yaml.safe_load(out.read_text())
    assert rendered["global"]["scrape_interval"] == "15s"
    assert rendered["scrape_configs"][0]["scrape_interval"] == "5s"
    assert rendered["rule_files"] == [str(tmp_path / "repo" / "rules" / "*.yml")]


def test_durations() -> None:
    assert cfg.parse_duration("1h30m") == 5400
    assert cfg.parse_duration("90s") == 90
    assert cfg.parse_duration("500ms") == 0.5
    assert cfg.format_duration(5) == "5s"
    assert cfg.format_duration(0.5) == "500ms"
    with pytest.raises(ValueError):
        cfg.parse_duration("5 minutes")


def test_shorten_rules_scales_for_and_keeps_order(tmp_path: Path) -> None:
    src = write(
        tmp_path / "alerts.yml",
        """
groups:
  - name: g
    rules:
      - record: job:x:rate5m
        expr: rate(x[5m])
      - alert: Slow
        expr: x > 1
        for: 45s
      - alert: Quick
        expr: x > 2
        for: 30s
      - alert: Instant
        expr: x > 3
""",
    )
    (out,) = cfg.shorten_rules([src], tmp_path / "short", max_for=5)
    rules = yaml.safe_load(out.read_text())["groups"][0]["rules"]
    # A warning that waits 45s behind a 30s critical still waits longer once shortened.
    assert [r.get("for") for r in rules] == [None, "5s", "3333ms", None]
    assert cfg.alert_names([out]) == ["Slow", "Quick", "Instant"]


def test_render_alertmanager_config(tmp_path: Path) -> None:
    src = write(
        tmp_path / "am" / "alertmanager.yml",
        """
global:
  smtp_smarthost: '127.0.0.1:2525'
  smtp_from: lab@example.org
  smtp_require_tls: false
templates: ['templates/*.tmpl']
route:
  receiver: slack
  group_wait: 30s
  group_interval: 5m
  routes:
    - matchers: ['severity="critical"']
      receiver: critical
      group_wait: 10s
      continue: true
receivers:
  - name: slack
    slack_configs:
      - api_url_file: secrets/slack_webhook_url
        channel: '#alerts'
  - name: critical
    email_configs:
      - to: oncall@example.org
    webhook_configs:
      - url: http://127.0.0.1:9099/webhook
""",
    )
    url_file = cfg.render_slack_url_file(
        write(tmp_path / "am" / "default", "http://127.0.0.1:9099/slack\n"), tmp_path / "run" / "url", PORTS
    )
    assert url_file.read_text() == "http://127.0.0.1:19099/slack\n"
    out = cfg.render_alertmanager_config(
        src,
        tmp_path / "run" / "am.yml",
        ports=PORTS,
        slack_url_file=url_file,
        timings={"group_wait": "1s", "group_interval": "2s"},
    )
    rendered = yaml.safe_load(out.read_text())
    assert rendered["global"]["smtp_smarthost"] == "127.0.0.1:12525"
    assert rendered["templates"] == [str(tmp_path / "am" / "templates" / "*.tmpl")]
    assert rendered["receivers"][0]["slack_configs"][0]["api_url_file"] == str(url_file)
    assert rendered["receivers"][1]["webhook_configs"][0]["url"] == "http://127.0.0.1:19099/webhook"
    top, child = rendered["route"], rendered["route"]["routes"][0]
    assert (top["group_wait"], top["group_interval"]) == ("1s", "2s")
    # A child route only gets the timings it overrides itself; the others it inherits.
    assert child["group_wait"] == "1s" and "group_interval" not in child


def test_real_slack_url_is_kept(tmp_path: Path) -> None:
    url = "https://hooks.slack.com/services/T0/B0/abc"  # pragma: allowlist secret (a made-up URL)
    real = write(tmp_path / "secret", url + "\n")
    out = cfg.render_slack_url_file(real, tmp_path / "url", PORTS)
    assert out.read_text() == url + "\n"


# ------------------------------------------------------------- the repository's own configuration, rendered


@pytest.mark.skipif(
    not shutil.which("promtool") or not shutil.which("amtool"), reason="needs promtool/amtool"
)
def test_lab_plan_renders_configs_prometheus_and_alertmanager_accept(tmp_path: Path) -> None:
    from labctl.stack import lab_plan

    plan = lab_plan(tmp_path, ports=PORTS, max_for=5, scrape_interval="1s", evaluation_interval="1s")
    r = plan.rendered
    check = subprocess.run(
        ["promtool", "check", "config", str(r.prometheus_config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    check = subprocess.run(
        ["amtool", "check-config", str(r.alertmanager_config)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # Every native target points at this lab's ports, never at a default one.
    targets = "".join(p.read_text() for p in r.targets_dir.iterdir())
    assert ":18000" in targets and ":18001" in targets
    assert not any(f":{port}" in targets for port in Ports().as_dict().values())
    assert str(PORTS.receiver_http) in r.slack_url_file.read_text()
    assert f"127.0.0.1:{PORTS.receiver_smtp}" in r.alertmanager_config.read_text()
    # Its templates are copies whose "alerts" link is this lab's inbox: Debian's Alertmanager has no UI.
    templates = tmp_path / "run" / "alertmanager-templates"
    assert yaml.safe_load(r.alertmanager_config.read_text())["templates"] == [str(templates / "*.tmpl")]
    assert {p.name for p in templates.iterdir()} == {
        p.name for p in (ROOT / "alertmanager" / "templates").iterdir()
    }
    links = (templates / "links.tmpl").read_text()
    assert f"http://localhost:{PORTS.receiver_http}/inbox" in links and "ExternalURL" not in links
    # Shortened copies of the real rules: same alerts, no `for:` above 5s.
    short = sorted(r.rules_dir.glob("*.y*ml"))
    originals = cfg.rule_files(ROOT / "prometheus" / "prometheus.yml")
    assert cfg.alert_names(short) == cfg.alert_names(originals) and cfg.alert_names(short)
    for path in short:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert cfg.parse_duration(rule.get("for", "0s")) <= 5
    names = {p.name for p in plan.processes}
    assert {"ml_api", "rag_api", "receiver", "prometheus", "alertmanager", "traffic"} <= names
    # The services start through their own launcher (`python -m ml_api`), so ML_WORKERS / RAG_WORKERS apply,
    # on this lab's ports.
    for name in ("ml_api", "rag_api"):
        spec = plan.spec(name)
        assert spec.cmd[1:] == ["-m", name], spec.cmd
        assert spec.env["ML_PORT"] == str(PORTS.ml_api) and spec.env["RAG_PORT"] == str(PORTS.rag_api)


def _annotations(rules_dir: Path) -> dict[str, dict[str, str]]:
    return {
        rule["alert"]: rule["annotations"]
        for path in sorted(rules_dir.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.mark.parametrize("grafana", [False, True])
def test_rendered_rules_link_to_this_labs_receiver_and_dashboards(tmp_path: Path, grafana: bool) -> None:
    from monitoring.contract import alerts_by_name
    from monitoring.render import Links

    rules = cfg.rule_files(ROOT / "prometheus" / "prometheus.yml")
    written = cfg.render_rule_files(rules, tmp_path, cfg.lab_links(PORTS, grafana=grafana), max_for=5)
    assert sorted(p.name for p in written) == sorted(p.name for p in rules)
    annotations = _annotations(tmp_path)
    assert sorted(annotations) == sorted(alerts_by_name())
    for name, notes in annotations.items():
        assert notes["runbook_url"] == f"http://localhost:{PORTS.receiver_http}/runbooks#{name.lower()}"
        if grafana:
            assert notes["dashboard_url"].startswith(f"http://localhost:{PORTS.grafana}/d/"), notes
        else:  # no Grafana: the Prometheus graph of the alert's own expression
            graph = Links(dashboard_base=None, prometheus_base=f"http://localhost:{PORTS.prometheus}")
            assert notes["dashboard_url"] == graph.dashboard(alerts_by_name()[name])
    # Everything but the links is the repository's rule file, as generated.
    original = _annotations(ROOT / "prometheus" / "rules")
    assert {n: a["summary"] for n, a in annotations.items()} == {n: a["summary"] for n, a in original.items()}


def test_rule_files_not_from_the_contract_are_copied_as_they_are(tmp_path: Path) -> None:
    own = write(
        tmp_path / "src" / "mine.yml",
        "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: up\n",
    )
    (out,) = cfg.render_rule_files([own], tmp_path / "out", cfg.lab_links(PORTS, grafana=False))
    assert out.read_text() == own.read_text()


# ------------------------------------------------------------------------------------------------- status


def test_status_with_nothing_running_exits_non_zero(tmp_path: Path) -> None:
    result = run_labctl("status", state_file=tmp_path / "labctl.json", env=Ports.free().env())
    assert result.returncode != 0
    assert "ml_api         DOWN" in result.stdout
    assert "Nothing is running: start the lab with `make lab`." in result.stdout


def test_down_with_nothing_running_explains(tmp_path: Path) -> None:
    result = run_labctl("down", state_file=tmp_path / "labctl.json")
    assert result.returncode == 0
    assert "No lab is running" in result.stdout


# ------------------------------------------------------------------------------------------------ waitfor


def test_waitfor_runs_the_command_once_urls_answer_or_after_timeout(tmp_path: Path) -> None:
    free = Ports.free()
    cmd = [
        sys.executable,
        "-m",
        "labctl.waitfor",
        "--timeout",
        "1",
        "--url",
        f"http://127.0.0.1:{free.ml_api}/",
    ]
    result = subprocess.run(
        [*cmd, "--", sys.executable, "-c", "print('started')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "started"
    assert "still not ready after 1s" in result.stderr


def test_render_grafana_provisioning_points_at_the_repository_dashboards(tmp_path: Path) -> None:
    source = ROOT / "grafana" / "provisioning"
    out = cfg.render_grafana_provisioning(
        source, tmp_path / "prov", ports=PORTS, dashboards_dir=ROOT / "grafana" / "dashboards"
    )
    providers = [
        provider
        for path in (out / "dashboards").glob("*.y*ml")
        for provider in (yaml.safe_load(path.read_text()) or {}).get("providers") or []
    ]
    assert providers, "no dashboard provider in grafana/provisioning/dashboards/"
    assert {p["options"]["path"] for p in providers} == {str(ROOT / "grafana" / "dashboards")}
    # Datasource URLs stay ${VAR} references: labctl sets PROMETHEUS_URL / ALERTMANAGER_URL for Grafana.
    datasources = "".join(p.read_text() for p in (out / "datasources").glob("*.y*ml"))
    assert "${PROMETHEUS_URL}" in datasources


# --------------------------------------------------------------------------------------------------- demo


def test_demo_passes_the_options_it_does_not_know_to_the_simulations() -> None:
    from labctl.demo import build_parser

    # `make demo ARGS="--timeout 240 --keep"`: --keep is the demo's, --timeout belongs to `simulations all`.
    args, extra = build_parser().parse_known_args(["--timeout", "240", "--keep", "--recovery-timeout", "5"])
    assert args.keep and extra == ["--timeout", "240", "--recovery-timeout", "5"]
    # An abbreviation of a demo option must not swallow a simulation option (--st would be --startup-timeout).
    args, extra = build_parser().parse_known_args(["--st", "1"])
    assert extra == ["--st", "1"] and args.startup_timeout == 600


@pytest.mark.skipif(
    shutil.which("prometheus-pushgateway") is None, reason="prometheus-pushgateway not installed"
)
def test_a_new_lab_pushgateway_starts_empty_and_keeps_its_own_pushes(tmp_path: Path) -> None:
    """Debian's Pushgateway persists to one machine-wide file by default: every new lab then served the
    eval runs of earlier labs, and LLMEvalStale fired on a fresh one."""
    import httpx

    from lab_common.net import free_port
    from labctl.stack import lab_plan
    from labctl.wait import wait_http

    def run_pushgateway(workdir: Path, push: bool) -> str:
        ports = Ports(**{**PORTS.as_dict(), "pushgateway": free_port()})
        spec = lab_plan(workdir, ports=ports, max_for=5).spec("pushgateway")
        process = subprocess.Popen(spec.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{ports.pushgateway}"
        try:
            wait_http(f"{url}/-/ready", timeout=20)
            if push:
                httpx.put(f"{url}/metrics/job/llm_eval", content="llm_eval_cases 7\n", timeout=5)
            return httpx.get(f"{url}/metrics", timeout=5).text
        finally:
            process.terminate()  # writes the persistence file on the way out
            process.wait(timeout=10)

    assert 'job="llm_eval"} 7' in run_pushgateway(tmp_path / "a", push=True)
    assert "llm_eval_cases{" in run_pushgateway(tmp_path / "a", push=False)  # the same lab keeps its runs
    assert "llm_eval_cases{" not in run_pushgateway(tmp_path / "b", push=False)  # a new lab starts empty


def test_a_new_lab_forgets_the_notifications_of_the_lab_before_it(tmp_path: Path) -> None:
    """A demo stopped with MLHighLatencyP99 firing: the next lab's Alertmanager took the same alert for one
    it had already notified (its nflog), and the learner's stage 7 fault reached no receiver for an hour."""
    from labctl.stack import lab_plan

    storage = tmp_path / "alertmanager"
    storage.mkdir()
    (storage / "nflog").write_bytes(b"notified: MLHighLatencyP99")
    (storage / "silences").write_bytes(b"a silence")
    lab_plan(tmp_path, ports=PORTS, max_for=5)
    assert not (storage / "nflog").exists()
    assert (storage / "silences").read_bytes() == b"a silence"  # a learner's silences outlive the lab


def test_a_new_lab_starts_on_an_empty_tsdb_and_keeps_the_previous_one_aside(tmp_path: Path) -> None:
    """A lab restarted within the anomaly baseline's 15 minutes judged its first minutes against the previous
    run's samples: request-rate and latency anomaly alerts fired on a healthy lab. A new lab's Prometheus
    starts empty (labctl up --keep-metrics keeps the history); one previous TSDB is kept, not more."""
    from labctl.cli import build_parser
    from labctl.stack import lab_plan

    tsdb = tmp_path / "prometheus"
    (tsdb / "wal").mkdir(parents=True)
    (tsdb / "wal" / "00000000").write_bytes(b"the first run")
    plan = lab_plan(tmp_path, ports=PORTS, max_for=5)
    previous = tmp_path / "prometheus.previous"
    assert plan.previous_metrics == previous and list(tsdb.iterdir()) == []
    assert (previous / "wal" / "00000000").read_bytes() == b"the first run"
    assert str(tsdb) in " ".join(plan.spec("prometheus").cmd)

    (tsdb / "wal").mkdir()
    (tsdb / "wal" / "00000000").write_bytes(b"the second run")
    assert lab_plan(tmp_path, ports=PORTS, max_for=5).previous_metrics == previous
    assert (previous / "wal" / "00000000").read_bytes() == b"the second run"  # bounded: one copy

    assert lab_plan(tmp_path, ports=PORTS, max_for=5).previous_metrics is None  # an empty TSDB stays
    (tsdb / "chunks_head").mkdir()
    kept = lab_plan(tmp_path, ports=PORTS, max_for=5, keep_metrics=True)
    assert kept.previous_metrics is None and (tsdb / "chunks_head").is_dir()
    assert build_parser().parse_args(["up", "--keep-metrics"]).keep_metrics
    assert not build_parser().parse_args(["up"]).keep_metrics
