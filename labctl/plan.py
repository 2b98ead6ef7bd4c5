"""The native lab's process plan: what runs, with which command, environment and health URL.

`lab_plan()` renders the configuration into a work directory (labctl.config) and describes every process;
labctl.supervisor runs the plan, for `make lab` and `make demo` (labctl.cli) and for the tests
(labctl.stack.NativeStack) alike.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_common.endpoints import LOCAL_HOST
from lab_common.state import records_path
from labctl import config as cfg
from labctl.binaries import (
    GRAFANA_INSTALL_HINT,
    MissingTools,
    find_binary,
    grafana_binary,
    grafana_homepath,
    monitoring_binaries,
)
from labctl.config import ROOT, Ports, Rendered


class StartupError(RuntimeError):
    """A process exited or never became healthy."""


# process -> (the Ports field of its HTTP port, the path that answers 200 once it is ready)
HEALTH: dict[str, tuple[str, str]] = {
    "receiver": ("receiver_http", "/health"),
    "ml_api": ("ml_api", "/ready"),
    "rag_api": ("rag_api", "/ready"),
    "prometheus": ("prometheus", "/-/ready"),
    "alertmanager": ("alertmanager", "/-/ready"),
    "grafana": ("grafana", "/api/health"),
    "pushgateway": ("pushgateway", "/-/ready"),
}


def health_url(name: str, ports: Ports) -> str:
    port, path = HEALTH[name]
    return ports.url(port) + path


@dataclass
class ProcessSpec:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    health_url: str  # "" for processes that have none (traffic)
    # Optional processes (traffic) are not health-checked beyond "still running".
    optional: bool = False


@dataclass
class LabPlan:
    workdir: Path
    ports: Ports
    rendered: Rendered
    processes: list[ProcessSpec]
    prepare_steps: list[list[str]] = field(default_factory=list)
    previous_metrics: Path | None = None  # where the previous lab's TSDB went (start_metrics_afresh)

    def spec(self, name: str) -> ProcessSpec:
        for spec in self.processes:
            if spec.name == name:
                return spec
        raise KeyError(f"no process {name!r} in this lab: {[p.name for p in self.processes]}")

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.processes)


@dataclass(frozen=True)
class Options:
    """How a lab differs from `make lab`'s (the tests shorten every interval)."""

    rules_dir: Path | None = None  # replaces the repository's rules
    max_for: float | None = None  # scales every alert's `for:` down to at most this (fast tests)
    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    alertmanager_timings: Mapping[str, str] | None = None
    traffic: bool = True
    grafana: bool | None = None  # None: only when installed
    service_env: Mapping[str, str] | None = None  # added to both services' environment
    slack_url_source: Path | None = None  # the webhook URL file (default: the local receiver)
    keep_metrics: bool = False  # start Prometheus on the previous lab's TSDB (labctl up --keep-metrics)
    python: str = sys.executable


def lab_plan(workdir: Path, *, ports: Ports | None = None, root: Path = ROOT, **options: Any) -> LabPlan:
    """Render the configuration into `workdir` and describe every process of the lab (options: `Options`)."""
    opts = Options(**options)
    ports = ports or Ports.from_env()
    workdir = workdir.resolve()
    binaries = monitoring_binaries()
    for sub in ("run", "prometheus", "alertmanager", "pushgateway", "receiver", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    forget_earlier_notifications(workdir / "alertmanager")
    previous = None if opts.keep_metrics else start_metrics_afresh(workdir / "prometheus")
    grafana = grafana_spec(workdir, ports, root, opts.grafana)
    rendered = render_configs(workdir, ports, root, opts, grafana=grafana is not None)
    base_env = {"PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    processes = [
        receiver_spec(workdir, ports, root, opts.python, base_env),
        *service_specs(workdir, ports, root, opts, base_env),
        prometheus_spec(workdir, ports, root, opts.python, binaries["prometheus"], rendered, base_env),
        alertmanager_spec(workdir, ports, root, binaries["alertmanager"], rendered),
    ]
    if pushgateway := pushgateway_spec(workdir, ports, root):
        processes.append(pushgateway)
    if grafana:
        processes.append(grafana[0])
        rendered.grafana_provisioning = grafana[1]
    if opts.traffic:
        processes.append(traffic_spec(root, ports, opts.python, base_env))
    return LabPlan(workdir, ports, rendered, processes, prepare_steps(workdir, opts.python), previous)


def render_configs(workdir: Path, ports: Ports, root: Path, opts: Options, *, grafana: bool) -> Rendered:
    """Prometheus's and Alertmanager's configuration, the targets, the rules (their links to this lab's
    receiver and, when it runs, Grafana) and the Slack URL file."""
    run = workdir / "run"
    prom_src = root / "prometheus" / "prometheus.yml"
    am_src = root / "alertmanager" / "alertmanager.yml"
    for needed in (prom_src, am_src):
        if not needed.exists():
            raise StartupError(f"{needed} is missing")
    targets_dir = run / "targets"
    cfg.render_targets(native_targets_dir(root), targets_dir, ports)
    rules_dir = opts.rules_dir
    if rules_dir is None:
        rules_dir = run / "rules"
        links = cfg.lab_links(ports, grafana=grafana)
        cfg.render_rule_files(cfg.rule_files(prom_src), rules_dir, links, max_for=opts.max_for)
    prometheus_config = cfg.render_prometheus_config(
        prom_src,
        run / "prometheus.yml",
        ports=ports,
        targets_dir=targets_dir,
        rules_dir=rules_dir,
        scrape_interval=opts.scrape_interval,
        evaluation_interval=opts.evaluation_interval,
    )
    slack_source = opts.slack_url_source or root / "alertmanager" / "slack_webhook_url.default"
    slack_url_file = slack_url_file_for(slack_source, run / "slack_webhook_url", ports)
    alertmanager_config = cfg.render_alertmanager_config(
        am_src,
        run / "alertmanager.yml",
        ports=ports,
        slack_url_file=slack_url_file,
        timings=opts.alertmanager_timings,
        templates_dir=run / "alertmanager-templates",  # its links go to this lab's receiver, not a missing UI
    )
    return Rendered(
        prometheus_config=prometheus_config,
        alertmanager_config=alertmanager_config,
        slack_url_file=slack_url_file,
        targets_dir=targets_dir,
        rules_dir=rules_dir,
        grafana_provisioning=None,
    )


def slack_url_file_for(source: Path, dest: Path, ports: Ports) -> Path:
    """The webhook URL file Alertmanager reads: `source` itself when this lab's ports change nothing in it
    (Alertmanager re-reads the file at every notification, so a real Slack URL put there takes effect), else
    a copy in `dest` with this lab's receiver port."""
    text = source.read_text(encoding="utf-8") if source.exists() else ""
    if text and cfg.rewrite_ports(text, ports.replacements()) == text:
        return source.resolve()
    return cfg.render_slack_url_file(source, dest, ports)


# The lab profile (docs/profiles.md) of every process that reads it: ml_api, rag_api and the receiver.
# docker-compose.yml (x-lab-profile) and deploy/kubernetes (the lab-profile ConfigMap) give it to the same
# three.
LAB_PROFILE_ENV = {"LAB_PROFILE": "true"}


def receiver_spec(
    workdir: Path, ports: Ports, root: Path, python: str, base_env: dict[str, str]
) -> ProcessSpec:
    env = {
        **base_env,
        "RECEIVER_HOST": LOCAL_HOST,
        "RECEIVER_HTTP_PORT": str(ports.receiver_http),
        "RECEIVER_SMTP_PORT": str(ports.receiver_smtp),
        "RECEIVER_LOG": str(workdir / "receiver" / "notifications.jsonl"),
        # Its inbox page lists what this lab's Alertmanager holds; the lab profile opens its admin routes.
        "RECEIVER_ALERTMANAGER_URL": ports.url("alertmanager"),
        **LAB_PROFILE_ENV,
    }
    return ProcessSpec("receiver", [python, "-m", "receiver"], env, root, health_url("receiver", ports))


def service_specs(
    workdir: Path, ports: Ports, root: Path, opts: Options, base_env: dict[str, str]
) -> list[ProcessSpec]:
    """ml_api and rag_api through `python -m <service>` (their settings: host, port, ML_WORKERS ...)."""
    env = {
        **base_env,
        **LAB_PROFILE_ENV,
        "ML_HOST": LOCAL_HOST,
        "ML_PORT": str(ports.ml_api),
        "RAG_HOST": LOCAL_HOST,
        "RAG_PORT": str(ports.rag_api),
        **ml_rag_env(workdir, ports),
        **(opts.service_env or {}),
    }
    return [
        ProcessSpec(name, [opts.python, "-m", name], env, root, health_url(name, ports))
        for name in ("ml_api", "rag_api")
    ]


def prometheus_spec(
    workdir: Path,
    ports: Ports,
    root: Path,
    python: str,
    binary: str,
    rendered: Rendered,
    base_env: dict[str, str],
) -> ProcessSpec:
    # Scrapes start once the services answer: no TargetDown while rag_api loads its knowledge.
    wait = [python, "-m", "labctl.waitfor", "--timeout", "900"]
    for name in ("ml_api", "rag_api"):
        wait += ["--url", health_url(name, ports)]
    cmd = [
        *wait,
        "--",
        binary,
        f"--config.file={rendered.prometheus_config}",
        f"--storage.tsdb.path={workdir / 'prometheus'}",
        f"--web.listen-address={LOCAL_HOST}:{ports.prometheus}",
        # Alert links ("Query" in Slack and email) point here rather than at the host name.
        f"--web.external-url=http://localhost:{ports.prometheus}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    return ProcessSpec("prometheus", cmd, base_env, root, health_url("prometheus", ports))


def forget_earlier_notifications(storage: Path) -> None:
    """A new lab's Alertmanager starts without the notification log of the lab before it (silences stay).

    Alertmanager de-duplicates against that log: when an earlier lab stopped while an alert was firing (a
    demo stops before the resolved notifications go out), the same alert firing in the next lab counted as
    already notified, and nothing arrived until `repeat_interval` (1 h) had passed. A restart of
    Alertmanager within one lab keeps its log: only a new lab forgets it."""
    (storage / "nflog").unlink(missing_ok=True)


def start_metrics_afresh(tsdb: Path) -> Path | None:
    """A new lab's Prometheus starts on an empty TSDB; the previous lab's moves to `<tsdb>.previous` (one
    copy: the one before it is deleted), whose path is returned (None when there was nothing to move).

    The anomaly rules compare each signal with its baseline, the 10 minutes that ended 5 minutes ago (lab
    profile), and alert once that window holds half its samples. A lab restarted within those 15 minutes
    found the previous run's samples there, and its own first minutes (no traffic yet, cold caches) against
    them raised request-rate and latency anomaly alerts for a few minutes. On an empty TSDB the
    rules wait until the new lab has a baseline of its own. A restart of Prometheus within one lab (the
    supervisor's) keeps its TSDB: only a new lab starts afresh, unless it is asked to keep the history."""
    if not tsdb.is_dir() or not any(tsdb.iterdir()):
        return None
    previous = tsdb.with_name(tsdb.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    tsdb.rename(previous)
    tsdb.mkdir()
    return previous


def alertmanager_spec(
    workdir: Path, ports: Ports, root: Path, binary: str, rendered: Rendered
) -> ProcessSpec:
    cmd = [
        binary,
        f"--config.file={rendered.alertmanager_config}",
        f"--storage.path={workdir / 'alertmanager'}",
        "--cluster.listen-address=",
        f"--web.listen-address={LOCAL_HOST}:{ports.alertmanager}",
        f"--web.external-url=http://localhost:{ports.alertmanager}",
        "--log.level=warn",
    ]
    return ProcessSpec("alertmanager", cmd, {}, root, health_url("alertmanager", ports))


def pushgateway_spec(workdir: Path, ports: Ports, root: Path) -> ProcessSpec | None:
    """The Pushgateway the eval gate pushes to (python -m simulations eval --pushgateway-url); optional: a lab
    without the binary runs, and the gate just has nowhere to push.

    Its pushes persist in the lab's own directory: Debian's build defaults to one machine-wide file
    (/var/lib/prometheus/pushgateway.data), which handed every new lab the stale eval runs of earlier ones
    (LLMEvalStale fired on a fresh lab)."""
    binary = find_binary("prometheus-pushgateway", "pushgateway")
    if binary is None:
        return None
    cmd = [
        binary,
        f"--web.listen-address={LOCAL_HOST}:{ports.pushgateway}",
        f"--persistence.file={workdir / 'pushgateway' / 'pushgateway.data'}",
        "--log.level=warn",
    ]
    return ProcessSpec("pushgateway", cmd, {}, root, health_url("pushgateway", ports))


def grafana_spec(
    workdir: Path, ports: Ports, root: Path, wanted: bool | None
) -> tuple[ProcessSpec, Path] | None:
    """Grafana with the repository's provisioning when installed and wanted: (spec, provisioning dir)."""
    command = grafana_binary() if wanted is not False else None
    if wanted and command is None:
        raise MissingTools(GRAFANA_INSTALL_HINT)
    if command is None or not (root / "grafana" / "provisioning").is_dir():
        return None
    provisioning = cfg.render_grafana_provisioning(
        root / "grafana" / "provisioning",
        workdir / "run" / "grafana-provisioning",
        ports=ports,
        dashboards_dir=root / "grafana" / "dashboards",
    )
    home = grafana_homepath(command[0])
    env = {
        "GF_PATHS_PROVISIONING": str(provisioning),
        "GF_PATHS_DATA": str(workdir / "grafana"),
        "GF_PATHS_LOGS": str(workdir / "logs"),
        "GF_SERVER_HTTP_ADDR": LOCAL_HOST,
        "GF_SERVER_HTTP_PORT": str(ports.grafana),
        "GF_AUTH_ANONYMOUS_ENABLED": "true",
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "PROMETHEUS_URL": ports.url("prometheus"),
        "ALERTMANAGER_URL": ports.url("alertmanager"),
    }
    cmd = [*command, *([f"--homepath={home}"] if home else [])]
    return ProcessSpec("grafana", cmd, env, root, health_url("grafana", ports)), provisioning


def native_targets_dir(root: Path) -> Path:
    """The native file_sd files: `prometheus/targets/*.yml` (compose mounts targets/docker/ over them)."""
    nested = root / "prometheus" / "targets" / "native"
    return nested if nested.is_dir() else root / "prometheus" / "targets"


def ml_rag_env(workdir: Path, ports: Ports) -> dict[str, str]:
    """Where the services keep their state in this lab, and how ml_api reaches rag_api."""
    return {
        "ML_MODEL_DIR": str(workdir / "models"),
        "ML_RAG_URL": ports.url("rag_api"),
        "RAG_CHROMA_PATH": str(workdir / "chroma"),
        "RAG_RECORDS_PATH": str(records_path(workdir)),  # where the records CLIs look when run in this lab
    }


def prepare_steps(workdir: Path, python: str) -> list[list[str]]:
    """Commands to run once before the lab starts: train the model when no artifact exists (a few seconds;
    ml_api would also train at start-up, but a separate step shows its figures and fails loudly)."""
    model_dir = workdir / "models"
    if (model_dir / "LATEST").exists():
        return []
    return [[python, "-m", "ml_api.train", "--model-dir", str(model_dir)]]


def traffic_spec(root: Path, ports: Ports, python: str, base_env: dict[str, str]) -> ProcessSpec:
    """Steady healthy traffic at a low rate (cheaper than Locust on a laptop; `simulations traffic` runs
    Locust for heavier load), once both services are ready."""
    ml, rag = ports.url("ml_api"), ports.url("rag_api")
    env = {**base_env, "ML_API_URL": ml, "RAG_API_URL": rag}
    cmd = [python, "-m", "labctl.traffic", "--ml-url", ml, "--rag-url", rag, "--rate", "2"]
    wait = [python, "-m", "labctl.waitfor"]
    for name in ("ml_api", "rag_api"):
        wait += ["--url", health_url(name, ports)]
    return ProcessSpec("traffic", [*wait, "--", *cmd], env, root, "", optional=True)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
