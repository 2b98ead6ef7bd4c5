"""Prometheus configuration as tested code: promtool checks and unit tests, the rule conventions, the docs.

Needs `promtool` (and `prometheus` for the start-up test). Without them the tests skip locally and FAIL in CI
(`CI` set): an alert rule that was never checked is the failure mode this lab exists to avoid.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from lab_common.endpoints import default_port
from lab_common.net import free_port
from labctl.wait import WaitTimeout, stop_process, wait_http, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "prometheus"
ALERTS_FILE = PROM / "rules" / "alerts.yml"
RECORDING_FILE = PROM / "rules" / "recording.yml"
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
PRODUCTION_ALERTS_FILE = PROM / "profiles" / "production" / "rules" / "alerts.yml"
RUNBOOK_BASE = "http://localhost:9099/runbooks#"
UIDS = ("ml-service", "llm-quality", "llm-safety", "llm-cost", "pipeline-health")
DASHBOARDS = {f"http://localhost:3000/d/{uid}" for uid in UIDS}
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook_url", "dashboard_url"}
# `up == 0` has no value worth printing (it is 0); its description names the target instead.
NO_VALUE_IN_DESCRIPTION = {"TargetDown"}
# Every range the cost rules use besides 1m: the budget projection's window (lab 5m, production 1h), its
# rolling day, and the negative-feedback share's 15m (monitoring/alerts/alerts.yaml, area cost).
BUDGET_WINDOWS = {"5m", "1h", "1d", "15m"}
# Scrape targets by `service` label, with their default ports (lab_common/endpoints.py).
SERVICES = {
    "ml_api": default_port("ml_api"),
    "rag_api": default_port("rag_api"),
    "prometheus": default_port("prometheus"),
    "alertmanager": default_port("alertmanager"),
    "receiver": default_port("receiver_http"),
    "pushgateway": default_port("pushgateway"),
}
DOCKER_HOSTS = {
    "ml_api": "ml-api",
    "rag_api": "rag-api",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "receiver": "alert-receiver",
    "pushgateway": "pushgateway",
}
JOBS = {
    "ml-api": "ml_api",
    "rag-api": "rag_api",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "receiver": "receiver",
    "pushgateway": "pushgateway",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH (install Prometheus: `make tools`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def alert_rules(path: Path = ALERTS_FILE) -> dict[str, dict]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def groups_of(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())["groups"]


def all_exprs() -> list[str]:
    return [
        rule["expr"] for path in (ALERTS_FILE, RECORDING_FILE) for g in groups_of(path) for rule in g["rules"]
    ]


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h)", text):
        total += int(number) * units[unit]
    return total


# ---------------------------------------------------------------- promtool


def test_promtool_check_config_from_another_directory(tmp_path: Path) -> None:
    # Run from elsewhere: rule_files and file_sd paths must resolve relative to prometheus.yml itself.
    result = run(tool("promtool"), "check", "config", str(PROM / "prometheus.yml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 rule files found" in result.stdout  # alerts, anomaly, recording


def test_promtool_check_rules_lint_clean() -> None:
    files = (ALERTS_FILE, RECORDING_FILE, PRODUCTION_ALERTS_FILE)
    result = run(tool("promtool"), "check", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_pass() -> None:
    assert len(TEST_FILES) >= 4
    result = run(tool("promtool"), "test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES), result.stdout


def test_docker_targets_give_a_valid_config(tmp_path: Path) -> None:
    """Compose mounts targets/docker over targets/: the same prometheus.yml must stay valid."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM, copy)
    for native in (copy / "targets").glob("*.yml"):
        native.unlink()
    for docker in (copy / "targets" / "docker").glob("*.yml"):
        shutil.copy(docker, copy / "targets" / docker.name)
    result = run(tool("promtool"), "check", "config", str(copy / "prometheus.yml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- scrape configuration


def test_scrape_jobs_and_lab_intervals() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert duration_seconds(config["global"]["scrape_interval"]) <= 5
    assert duration_seconds(config["global"]["evaluation_interval"]) <= 5
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    for name, job in jobs.items():
        files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
        assert files == [f"targets/{JOBS[name]}.yml"], name
        assert "scrape_interval" not in job, "one interval for every job keeps rate windows comparable"
    alerting = [
        f for am in config["alerting"]["alertmanagers"] for sd in am["file_sd_configs"] for f in sd["files"]
    ]
    assert alerting == ["targets/alertmanager.yml"]
    assert config["rule_files"] == ["rules/*.yml"]


@pytest.mark.parametrize("mode", ["native", "docker"])
def test_targets_files_per_mode(mode: str) -> None:
    directory = PROM / "targets" if mode == "native" else PROM / "targets" / "docker"
    found = {}
    for path in sorted(directory.glob("*.yml")):
        groups = yaml.safe_load(path.read_text())
        assert len(groups) == 1, path
        (group,) = groups
        service = group["labels"]["service"]
        assert path.stem == service
        found[service] = group["targets"]
    host = {s: "127.0.0.1" if mode == "native" else DOCKER_HOSTS[s] for s in SERVICES}
    assert found == {s: [f"{host[s]}:{port}"] for s, port in SERVICES.items()}


def test_real_prometheus_discovers_targets_and_loads_rules(tmp_path: Path) -> None:
    """The real server, started from another directory: file_sd targets carry `service`, rules are healthy."""
    binary = tool("prometheus")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={PROM / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        targets: list[dict] = []
        rules: list[dict] = []

        def evaluated() -> bool:
            """Every rule evaluated once (lastEvaluation is zero before), and all four targets known."""
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            wait_http(f"{base}/-/ready", timeout=30, process=proc)
            targets[:] = httpx.get(f"{base}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
            groups = httpx.get(f"{base}/api/v1/rules", timeout=2).json()["data"]["groups"]
            rules[:] = [rule for group in groups for rule in group["rules"]]
            return (
                len(targets) == len(JOBS)
                and bool(rules)
                and all(not r["lastEvaluation"].startswith("0001") for r in rules)
            )

        with contextlib.suppress(WaitTimeout):  # the assertions below say what was missing
            wait_until(evaluated, timeout=30, every=0.3, retry_on=(httpx.TransportError,))
        labels = {(t["labels"]["job"], t["labels"]["service"], t["labels"]["instance"]) for t in targets}
        assert labels == {(job, svc, f"127.0.0.1:{SERVICES[svc]}") for job, svc in JOBS.items()}
        files = (ALERTS_FILE, RECORDING_FILE, PROM / "rules" / "anomaly.yml")
        assert len(rules) == sum(len(g["rules"]) for p in files for g in groups_of(p))
        unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not unhealthy
        managers = httpx.get(f"{base}/api/v1/alertmanagers", timeout=2).json()["data"]["activeAlertmanagers"]
        assert [m["url"] for m in managers] == ["http://127.0.0.1:9093/api/v2/alerts"]
    finally:
        stop_process(proc)


# ---------------------------------------------------------------- rule conventions


def test_every_alert_has_required_labels_and_annotations() -> None:
    rules = alert_rules()
    assert len(rules) >= 15
    for name, rule in rules.items():
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in {"critical", "warning"}, name
        assert labels.get("family"), f"{name}: `family` drives inhibition"
        # `service` comes from the series (`by (service)`); a constant would clash with it.
        assert "service" not in labels, name
        assert "service" in rule["expr"] or rule["expr"].strip() == "up == 0", name
        assert set(annotations) >= REQUIRED_ANNOTATIONS, name
        assert annotations["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        assert annotations["dashboard_url"] in DASHBOARDS, name
        if name not in NO_VALUE_IN_DESCRIPTION:
            assert "$value" in annotations["description"], f"{name}: the description must show the value"
        assert 30 <= duration_seconds(rule.get("for", "0s")) <= 60, f"{name}: lab `for` is 30s-1m"


@pytest.mark.parametrize("path", [ALERTS_FILE, PRODUCTION_ALERTS_FILE], ids=["lab", "production"])
def test_warnings_wait_longer_than_the_criticals_that_mute_them(path: Path) -> None:
    """Alertmanager flushes a new group at once (startsAt is older than group_wait after `for`): a warning
    must reach it after the critical of its family, or it can slip past the inhibition."""
    rules = alert_rules(path)
    for family in {r["labels"]["family"] for r in rules.values()}:
        members = [r for r in rules.values() if r["labels"]["family"] == family]
        critical = [duration_seconds(r["for"]) for r in members if r["labels"]["severity"] == "critical"]
        warning = [duration_seconds(r["for"]) for r in members if r["labels"]["severity"] == "warning"]
        if critical and warning:
            assert min(warning) >= max(critical) + 10, family
    # TargetDown{service="rag_api"} mutes TriageDegraded (on ml_api).
    assert (
        duration_seconds(rules["TriageDegraded"]["for"]) >= duration_seconds(rules["TargetDown"]["for"]) + 10
    )


def test_rules_use_only_contract_metrics() -> None:
    """Every service metric named in a rule is in docs/metrics.md (catches typos the promtool tests share)."""
    contract = set(
        re.findall(r"`((?:ml|rag|llm|triage)_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text())
    )
    exprs = " ".join(all_exprs())
    used = set(re.findall(r"(?<![:\w\"])((?:ml|rag|llm|triage)_[a-z0-9_]+)", exprs))  # not label values
    base = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert base, "no service metric found in the rules"
    assert base <= contract, base - contract


def test_rate_windows_are_lab_sized() -> None:
    """1m everywhere but the budget projection: a day's spend and its trend (alerts.yaml, area cost)."""
    windows = {w for expr in all_exprs() for w in re.findall(r"\[(\w+)\]", expr)}
    assert "1m" in windows and windows - {"1m"} <= BUDGET_WINDOWS, windows


# ---------------------------------------------------------------- unit-test coverage


def unit_test_cases() -> tuple[dict[str, list[dict]], dict[str, set[int]]]:
    """alertname -> firing exp_alerts; alertname -> indexes of the test blocks where it is checked silent
    after its `for` (so a silent check cannot just be a pending alert)."""
    rules = alert_rules()
    firing: dict[str, list[dict]] = {}
    silent: dict[str, set[int]] = {}
    block = 0
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            block += 1
            for case in test.get("alert_rule_test", []):
                name = case["alertname"]
                assert name in rules, f"{path.name}: test of unknown alert {name}"
                if case.get("exp_alerts"):
                    firing.setdefault(name, []).extend(case["exp_alerts"])
                elif duration_seconds(case["eval_time"]) > duration_seconds(rules[name].get("for", "0s")):
                    silent.setdefault(name, set()).add(block)
    return firing, silent


def test_every_alert_has_a_firing_case_with_exact_labels_and_annotations() -> None:
    firing, _ = unit_test_cases()
    rules = alert_rules()
    assert set(firing) == set(rules), set(rules) - set(firing)
    for name, expected in firing.items():
        for alert in expected:
            labels = alert["exp_labels"]
            assert labels["severity"] == rules[name]["labels"]["severity"], name
            assert labels["family"] == rules[name]["labels"]["family"], name
            assert labels.get("service") in SERVICES, f"{name}: firing case without a service label"
            assert set(alert["exp_annotations"]) == REQUIRED_ANNOTATIONS, name


def test_every_alert_has_silent_cases() -> None:
    """At least two separate scenarios (healthy traffic, and no traffic) where the alert must not fire."""
    _, silent = unit_test_cases()
    missing = {name: len(silent.get(name, ())) for name in alert_rules() if len(silent.get(name, ())) < 2}
    assert not missing, missing


# ---------------------------------------------------------------- docs


def test_every_alert_has_a_runbook_section() -> None:
    text = (ROOT / "docs" / "runbooks.md").read_text()
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    rules = alert_rules()
    assert set(rules) <= set(sections), set(rules) - set(sections)
    for name in rules:
        body = sections[name]
        assert "```promql" in body, f"runbook {name}: how to confirm (PromQL)"
        assert re.search(r"what to do", body, flags=re.I), f"runbook {name}: what to do"
