"""deploy/kubernetes validated offline: both overlays render, every object passes its schema (Kubernetes'
OpenAPI schemas; the Prometheus Operator CRDs' models), references resolve, and the rules, routes and
dashboards in the cluster are the ones of prometheus/, alertmanager/ and grafana/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1, v1alpha1

from lab_common.endpoints import Ports
from lab_common.state import records_path
from labctl.plan import lab_plan
from monitoring import kubernetes as k8s

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("lab", "production")
K8S_VERSION = "1.32.0"
OPERATOR_MODELS = {
    "ServiceMonitor": v1.ServiceMonitor,
    "PrometheusRule": v1.PrometheusRule,
    "AlertmanagerConfig": v1alpha1.AlertmanagerConfig,
}
# Secrets the production overlay expects you to create (docs/stage-10-kubernetes.md).
USER_SECRETS = {"lab-admin-token", "alertmanager-slack", "alertmanager-smtp"}


class _Loader(yaml.SafeLoader):
    """kubectl prints `matchType: =` unquoted; YAML 1.1's `=` (value) tag is just a string to Kubernetes."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not on PATH")
        pytest.skip(f"{name} is not on PATH")
    return path


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.load_all(result.stdout, Loader=_Loader) if doc)


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


def containers(overlay: str) -> dict[str, dict[str, Any]]:
    out = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, obj in of_kind(overlay, kind).items():
            for c in obj["spec"]["template"]["spec"]["containers"]:
                out[name] = {"pod": obj["spec"]["template"]["spec"], **c}
    return out


def env(container: dict[str, Any], overlay: str | None = None) -> dict[str, Any]:
    """The container's environment; with `overlay`, the ConfigMaps it loads (envFrom) too, as the kubelet
    does: `env` entries win over `envFrom`."""
    loaded: dict[str, Any] = {}
    if overlay is not None:
        maps = of_kind(overlay, "ConfigMap")
        for source in container.get("envFrom", []):
            loaded.update(maps[source["configMapRef"]["name"]]["data"])
    return loaded | {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_validate_against_the_kubernetes_schemas(overlay: str) -> None:
    core = [o for o in rendered(overlay) if o["kind"] not in OPERATOR_MODELS]
    assert {o["kind"] for o in core} >= {"Deployment", "Service", "StatefulSet", "PodDisruptionBudget"}
    for obj in core:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_fits_kubectl_applys_annotation(overlay: str) -> None:
    """`kubectl apply` keeps a copy of each object in its last-applied annotation, at most 256 KiB: the
    PrometheusRule and the dashboard ConfigMaps grow with the contract and the dashboards."""
    sizes = {f"{o['kind']}/{o['metadata']['name']}": len(json.dumps(o)) for o in rendered(overlay)}
    assert max(sizes.values()) < 262_144, max(sizes.items(), key=lambda item: item[1])


def test_the_schema_check_catches_a_misspelt_field() -> None:
    service = json.loads(json.dumps(of_kind("production", "Service")["rag-api"]))
    service["spec"]["sessionAfinity"] = service["spec"].pop("sessionAffinity")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_objects_validate_against_the_crd_models(overlay: str) -> None:
    """The CRDs' own models (generated from prometheus-operator's CRDs): required fields, enums, and no
    field the operator would silently ignore (a dump of the parsed object must give the object back)."""
    seen = set()
    for obj in rendered(overlay):
        model = OPERATOR_MODELS.get(obj["kind"])
        if model:
            seen.add(obj["kind"])
            parsed = model.model_validate(obj)
            assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj, obj["kind"]
    assert seen == set(OPERATOR_MODELS)


def test_the_crd_check_catches_an_unknown_matcher_type() -> None:
    obj = json.loads(json.dumps(of_kind("lab", "AlertmanagerConfig")["observability-lab"]))
    obj["spec"]["inhibitRules"][0]["sourceMatch"][0]["matchType"] = "~="
    with pytest.raises(ValueError):
        v1alpha1.AlertmanagerConfig.model_validate(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_monitor_selects_a_service_port_that_exists(overlay: str) -> None:
    services = of_kind(overlay, "Service")
    monitors = of_kind(overlay, "ServiceMonitor")
    assert {"ml-api", "rag-api"} <= set(monitors)
    for name, monitor in monitors.items():
        wanted = monitor["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services.values() if wanted.items() <= s["metadata"].get("labels", {}).items()]
        assert chosen, f"{name}: selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in chosen), name
            # The rules aggregate by the lab's `service` values, not the Kubernetes Service names.
            assert {
                "targetLabel": "service",
                "replacement": name.replace("-", "_").replace("alert_", ""),
            } in (endpoint["relabelings"]), name
        pods = [o for o in rendered(overlay) if o["kind"] == "Deployment"]
        assert any(
            s["spec"]["selector"].items() <= p["spec"]["template"]["metadata"]["labels"].items()
            for s in chosen for p in pods
        ), f"{name}: its Service selects no pod"  # fmt: skip
    if overlay == "lab":
        assert "alert-receiver" in monitors


# The labels the Prometheus Operator gives every target of a ServiceMonitor (before its relabelings). A
# scraped label of the same name loses (honorLabels false) and is renamed `exported_<name>`.
OPERATOR_TARGET_LABELS = {"job", "instance", "namespace", "service", "pod", "container", "endpoint"}


def _metric_label_names() -> set[str]:
    """Every label name of the services' and the receiver's metrics (their registries, filled at import)."""
    import prometheus_client

    import ml_api.metrics  # noqa: F401
    import rag_api.metrics  # noqa: F401
    import receiver.metrics  # noqa: F401

    collectors = list(prometheus_client.REGISTRY._collector_to_names)  # no public listing of label names
    return set().union(*(getattr(c, "_labelnames", ()) for c in collectors))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_metric_label_is_renamed_by_the_operators_target_labels(overlay: str) -> None:
    """The services' `endpoint` (the route) would become `exported_endpoint` under the operator's `endpoint`
    target label, and every rule selecting `endpoint=~"/predict|..."` would be empty in the cluster."""
    names = _metric_label_names()
    assert {"endpoint", "status", "feature"} <= names
    for name, monitor in of_kind(overlay, "ServiceMonitor").items():
        for endpoint in monitor["spec"]["endpoints"]:
            assert not endpoint.get("honorLabels"), name
            dropped = {
                label for r in endpoint.get("relabelings", []) if r.get("action") == "labeldrop"
                for label in OPERATOR_TARGET_LABELS if re.fullmatch(r["regex"], label)
            }  # fmt: skip
            assert "service" not in dropped, name
            assert not names & (OPERATOR_TARGET_LABELS - dropped), name


def _groups_on_disk(profile: str) -> list[dict[str, Any]]:
    return k8s.rule_groups(profile, lambda path: (ROOT / path).read_text(encoding="utf-8"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_groups_equal_the_rule_files(overlay: str) -> None:
    (rule,) = of_kind(overlay, "PrometheusRule").values()
    assert rule["spec"]["groups"] == _groups_on_disk(overlay)
    names = [r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert "MLHighLatencyP90" in names and len(names) == len(set(names))


def _write_rule_files(overlay: str, dest: Path) -> list[Path]:
    (rule,) = of_kind(overlay, "PrometheusRule").values()
    groups = rule["spec"]["groups"]
    (dest / "rules").mkdir(parents=True)
    files = []
    for path in sorted((ROOT / k8s.RULES_DIR).glob("*.yml")):
        wanted = {g["name"] for g in yaml.safe_load(path.read_text())["groups"]}
        out = dest / "rules" / path.name
        out.write_text(
            yaml.safe_dump({"groups": [g for g in groups if g["name"] in wanted]}, sort_keys=False)
        )
        files.append(out)
    return files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_groups_pass_promtool(overlay: str, tmp_path: Path) -> None:
    files = _write_rule_files(overlay, tmp_path)
    result = subprocess.run(
        [tool("promtool"), "check", "rules", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lab_prometheus_rule_passes_the_promtool_unit_tests(tmp_path: Path) -> None:
    """The same prometheus/tests/*.yml, run against the rules taken out of the cluster object."""
    _write_rule_files("lab", tmp_path)
    shutil.copytree(ROOT / "prometheus" / "tests", tmp_path / "tests")
    tests = sorted((tmp_path / "tests").glob("*.yml"))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", *map(str, tests)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_alertmanager_config_has_the_routes_of_alertmanager_yml(overlay: str) -> None:
    (am,) = of_kind(overlay, "AlertmanagerConfig").values()
    native = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    spec = am["spec"]
    assert spec["route"]["receiver"] == native["route"]["receiver"]
    assert spec["route"]["groupBy"] == native["route"]["group_by"]
    names = {r["name"] for r in spec["receivers"]}
    assert names == {r["name"] for r in native["receivers"]}
    assert [r["receiver"] for r in spec["route"]["routes"]] == [
        r["receiver"] for r in native["route"]["routes"]
    ]
    assert len(spec["inhibitRules"]) == len(native["inhibit_rules"])
    for ours, theirs in zip(spec["inhibitRules"], native["inhibit_rules"], strict=True):
        assert ours.get("equal") == theirs.get("equal")
        for side in ("source", "target"):
            *matchers, lab_only = ours[f"{side}Match"]
            assert lab_only == k8s.LAB_ALERTS
            shown = [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in matchers]
            assert shown == [re.sub(r"\s", "", m) for m in theirs[f"{side}_matchers"]]
    assert spec["route"]["matchers"] == [k8s.LAB_ALERTS] and "matchers" not in native["route"]
    slack = spec["receivers"][0]["slackConfigs"][0]
    assert slack["apiURL"] == k8s.SLACK_SECRET
    assert slack["title"] == native["receivers"][0]["slack_configs"][0]["title"]
    if overlay == "production":
        assert spec["route"]["groupWait"] == "30s" and spec["route"]["repeatInterval"] == "4h"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_alertmanager_config_takes_every_lab_alert_and_only_those(overlay: str) -> None:
    """In the cluster's Alertmanager the AlertmanagerConfig's route and inhibitions are limited to alerts with
    a `family` (LAB_ALERTS): every alert of the PrometheusRule has one; kube-prometheus-stack's have none.
    The operator's default matcher (namespace="observability-lab") cannot be used: alerts aggregated
    `by (service)` have no namespace, so stage 10 installs the chart with the matcher strategy None."""
    (rule,) = of_kind(overlay, "PrometheusRule").values()
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert all(re.fullmatch(k8s.LAB_ALERTS["value"], a["labels"]["family"]) for a in alerts)
    assert any("by (service)" in a["expr"] for a in alerts)
    doc = (ROOT / "docs" / "stage-10-kubernetes.md").read_text()
    assert "alertmanagerConfigMatcherStrategy.type=None" in doc


def _secret_refs(obj: Any) -> set[str]:
    found = set()
    if isinstance(obj, dict):
        if "secretKeyRef" in obj:
            found.add(obj["secretKeyRef"]["name"])
        if set(obj) == {"name", "key"} and obj in (k8s.SLACK_SECRET, k8s.SMTP_SECRET):
            found.add(obj["name"])
        for value in obj.values():
            found |= _secret_refs(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= _secret_refs(value)
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_rendered_or_documented(overlay: str) -> None:
    refs = set().union(*(_secret_refs(o) for o in rendered(overlay)))
    present = set(of_kind(overlay, "Secret"))
    if overlay == "lab":
        assert refs <= present, refs - present
    else:
        assert refs == USER_SECRETS and not present
        doc = (ROOT / "docs" / "stage-10-kubernetes.md").read_text()
        assert all(name in doc for name in USER_SECRETS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened_and_probed(overlay: str) -> None:
    for name, c in containers(overlay).items():
        security, pod = c.get("securityContext", {}), c["pod"].get("securityContext", {})
        assert security.get("allowPrivilegeEscalation") is False, name
        assert "ALL" in security.get("capabilities", {}).get("drop", []), name
        assert {"requests", "limits"} <= set(c["resources"]), name
        assert c["pod"].get("automountServiceAccountToken") is False, name
        if name != "chroma":  # the upstream image runs as root (deploy/kubernetes/base/chroma.yaml)
            assert pod.get("runAsNonRoot") is True and security.get("readOnlyRootFilesystem") is True, name
    for name in ("ml-api", "rag-api"):
        c = containers(overlay)[name]
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert env(c)["PROMETHEUS_MULTIPROC_DIR"].startswith("/app/var/multiproc")
    # The root file system is read-only: rag_api's answer records need a volume where it writes them.
    rag = containers(overlay)["rag-api"]
    records_dir = Path(env(rag).get("RAG_RECORDS_PATH") or records_path(Path("/app/var"))).parent
    assert str(records_dir) in {m["mountPath"] for m in rag["volumeMounts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_feedback_reaches_the_rag_api_pod_that_answered(overlay: str) -> None:
    """Answer records are per pod, so /feedback for an answer another pod served is a 404: the one Service in
    front of rag-api keeps a client on one pod (docs/stage-10-kubernetes.md says where that holds)."""
    (service,) = [
        s for s in of_kind(overlay, "Service").values()
        if s["spec"]["selector"] == {"app.kubernetes.io/name": "rag-api"}
    ]  # fmt: skip
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= 600
    rag = containers(overlay)["rag-api"]
    records = next(m["name"] for m in rag["volumeMounts"] if m["mountPath"] == "/app/var/records")
    assert "emptyDir" in next(v for v in rag["pod"]["volumes"] if v["name"] == records)
    doc = (ROOT / "docs" / "stage-10-kubernetes.md").read_text()
    assert "sessionAffinity: ClientIP" in doc and "Ingress" in doc


def test_lab_and_production_differ_where_they_should() -> None:
    lab, prod = containers("lab"), containers("production")
    for name in ("ml-api", "rag-api"):
        lab_env, prod_env = env(lab[name], "lab"), env(prod[name], "production")
        assert lab_env["LAB_PROFILE"] == "true" and lab_env["FAULTS_ENABLED"] == "true"
        assert prod_env["LAB_PROFILE"] == "false" and prod_env["FAULTS_ENABLED"] == "false"
        assert "ADMIN_TOKEN" not in env(lab[name])
        assert env(prod[name])["ADMIN_TOKEN"] == {"secretKeyRef": {"name": "lab-admin-token", "key": "token"}}
        assert of_kind("lab", "Deployment")[name]["spec"]["replicas"] == 1
        # The HPA owns the count: a spec.replicas would reset it at every `kubectl apply`.
        assert "replicas" not in of_kind("production", "Deployment")[name]["spec"]
    hpas = of_kind("production", "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {"ml-api", "rag-api"}
    assert all(h["spec"]["minReplicas"] >= 2 for h in hpas.values())
    assert not of_kind("lab", "HorizontalPodAutoscaler")
    assert "alert-receiver" in of_kind("lab", "Deployment") and "alert-receiver" not in of_kind(
        "production", "Deployment"
    )


def test_the_lab_receiver_reads_the_clusters_alertmanager() -> None:
    """Its inbox page shows Alertmanager's alerts and silences, as in compose and natively: in a pod the
    default (127.0.0.1:9093) is the pod itself, so the URL must name kube-prometheus-stack's Service."""
    receiver = env(containers("lab")["alert-receiver"])
    assert receiver["RECEIVER_ALERTMANAGER_URL"] == (
        "http://kube-prometheus-stack-alertmanager.monitoring.svc:9093"
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["alert-receiver"]
    assert compose["environment"]["RECEIVER_ALERTMANAGER_URL"] == "http://alertmanager:9093"


def test_the_three_run_modes_give_the_lab_profile_to_the_same_processes(tmp_path: Path) -> None:
    """ml_api, rag_api and the receiver read LAB_PROFILE (LabSettings): natively, in compose and in the lab
    overlay all three run in it (the receiver's admin routes, e.g. POST /admin/fail of stage 7, are refused
    outside it), and production's pods run outside it."""
    readers = {"ml_api", "rag_api", "receiver"}
    native = lab_plan(tmp_path, ports=Ports.from_env({}), max_for=5)
    assert {p.name for p in native.processes if p.env.get("LAB_PROFILE") == "true"} == readers
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    in_compose = {n for n, s in compose.items() if (s.get("environment") or {}).get("LAB_PROFILE") == "true"}
    assert in_compose == {"ml-api", "rag-api", "alert-receiver"}
    lab = {n for n, c in containers("lab").items() if env(c, "lab").get("LAB_PROFILE") == "true"}
    assert lab == {"ml-api", "rag-api", "alert-receiver"}
    production = [env(c, "production").get("LAB_PROFILE") for c in containers("production").values()]
    assert "true" not in production


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dashboard_config_maps_hold_the_committed_dashboards(overlay: str) -> None:
    maps = {n: m for n, m in of_kind(overlay, "ConfigMap").items() if n.startswith("dashboard-")}
    committed = {p.name: p.read_text() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    held = {}
    for cm in maps.values():
        assert cm["metadata"]["labels"].items() >= k8s.DASHBOARD_LABEL.items()
        held.update(cm["data"])
    assert held == committed


def _dockerfile_exposes() -> dict[str, set[int]]:
    stages: dict[str, set[int]] = {}
    current = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if m := re.match(r"FROM \S+ AS (\S+)", line):
            current = m.group(1)
            stages[current] = set(stages.get("app", set())) if current != "app" else set()
        elif m := re.match(r"EXPOSE (.+)", line):
            stages[current] |= {int(p) for p in m.group(1).split()}
    return stages


def test_images_and_ports_agree_with_the_dockerfile_and_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    image = {name: s.get("image") or compose["x-app"]["image"] for name, s in services.items()}
    exposed = _dockerfile_exposes()
    target = {"observability-lab/ml-api:0.1.0": "ml-api", "observability-lab/app:0.1.0": "app"}
    for overlay in OVERLAYS:
        for name, c in containers(overlay).items():
            assert c["image"] == image[name], name
            ports = {p["containerPort"] for p in c["ports"]}
            published = {int(p.rsplit(":", 1)[1]) for p in services[name].get("ports", [])}
            if c["image"] in target:
                assert ports <= exposed[target[c["image"]]], (name, ports)
            if name != "chroma":  # compose publishes Chroma's 8000 on the host's 8002
                assert ports & published, (name, ports, published)
