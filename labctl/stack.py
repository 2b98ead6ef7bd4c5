"""The native lab: what processes it runs, how they are configured, and a context manager that runs them.

`lab_plan()` describes every process (command, environment, health URL) of a lab in a work directory;
`labctl up` hands the plan to honcho, `NativeStack` runs it with plain subprocesses (one process group each,
logs in files) for the tests and the simulations.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from labctl import config as cfg
from labctl.config import ROOT, Ports, Rendered


class MissingTools(RuntimeError):
    """A binary the lab needs is not on PATH."""


class StartupError(RuntimeError):
    """A process exited or never became healthy."""


@dataclass
class ProcessSpec:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    health_url: str
    url: str  # where a person looks
    # Optional processes (traffic) are not health-checked beyond "still running".
    optional: bool = False

    def shell(self) -> str:
        """One Procfile line's command (honcho runs it through /bin/sh)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        cd = f"cd {shlex.quote(str(self.cwd))} && "
        return cd + (f"env {env} " if env else "") + "exec " + shlex.join(self.cmd)


@dataclass
class LabPlan:
    workdir: Path
    ports: Ports
    rendered: Rendered
    processes: list[ProcessSpec]
    prepare_steps: list[list[str]] = field(default_factory=list)

    def urls(self) -> dict[str, str]:
        return {p.name: p.url for p in self.processes}


# ------------------------------------------------------------------------------------------------ binaries


def find_binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def monitoring_binaries() -> dict[str, str]:
    """Prometheus and Alertmanager paths, or MissingTools naming exactly what to install."""
    prometheus = find_binary("prometheus")
    alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
    missing = [n for n, b in (("prometheus", prometheus), ("prometheus-alertmanager", alertmanager)) if not b]
    if missing:
        raise MissingTools(
            f"missing on PATH: {', '.join(missing)}.\n"
            "  Install them with `make tools` (as root it runs\n"
            "  `apt-get install -y prometheus prometheus-alertmanager`),\n"
            "  on macOS `brew install prometheus alertmanager`, or put the binaries on PATH."
        )
    assert prometheus and alertmanager
    return {"prometheus": prometheus, "alertmanager": alertmanager}


def grafana_binary() -> list[str] | None:
    """The command that starts Grafana if installed (`grafana server`, or the older `grafana-server`)."""
    if found := find_binary("grafana"):
        return [found, "server"]
    if found := find_binary("grafana-server"):
        return [found]
    return None


def grafana_homepath(binary: str) -> Path | None:
    for candidate in (
        Path("/usr/share/grafana"),
        Path(binary).resolve().parent.parent / "share" / "grafana",
        Path(binary).resolve().parent.parent,
    ):
        if (candidate / "conf" / "defaults.ini").exists():
            return candidate
    return None


# ----------------------------------------------------------------------------------------------- the plan


def lab_plan(
    workdir: Path,
    *,
    ports: Ports | None = None,
    root: Path = ROOT,
    rules_dir: Path | None = None,
    max_for: float | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    alertmanager_timings: Mapping[str, str] | None = None,
    traffic: bool = True,
    grafana: bool | None = None,
    service_env: Mapping[str, str] | None = None,
    slack_url_source: Path | None = None,
    python: str = sys.executable,
) -> LabPlan:
    """Render the configuration into `workdir` and describe every process of the lab.

    `max_for` caps every alert's `for:` (a copy of the rules, for fast tests); `rules_dir` replaces the
    rules altogether. `grafana=None` runs Grafana only when installed. `service_env` adds env vars to
    both services (e.g. a shorter drift interval). `slack_url_source` is the webhook URL file to use
    (default: the repository's default, i.e. the local receiver; a real Slack URL is kept as is).
    """
    ports = ports or Ports.from_env()
    workdir = workdir.resolve()
    binaries = monitoring_binaries()
    run = workdir / "run"  # rendered configuration
    for sub in ("run", "prometheus", "alertmanager", "receiver", "logs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)

    prom_src = root / "prometheus" / "prometheus.yml"
    am_src = root / "alertmanager" / "alertmanager.yml"
    for needed in (prom_src, am_src):
        if not needed.exists():
            raise StartupError(f"{needed} is missing")

    targets_dir = run / "targets"
    cfg.render_targets(native_targets_dir(root), targets_dir, ports)
    if rules_dir is None and max_for is not None:
        rules_dir = run / "rules"
        cfg.shorten_rules(cfg.rule_files(prom_src), rules_dir, max_for)
    prometheus_config = cfg.render_prometheus_config(
        prom_src,
        run / "prometheus.yml",
        ports=ports,
        targets_dir=targets_dir,
        rules_dir=rules_dir,
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
    )
    slack_url_source = slack_url_source or root / "alertmanager" / "slack_webhook_url.default"
    text = slack_url_source.read_text(encoding="utf-8") if slack_url_source.exists() else ""
    if text and cfg.rewrite_ports(text, ports.replacements()) == text:
        # Nothing to rewrite: use the file itself, which Alertmanager re-reads at every notification.
        slack_url_file = slack_url_source.resolve()
    else:
        slack_url_file = cfg.render_slack_url_file(slack_url_source, run / "slack_webhook_url", ports)
    alertmanager_config = cfg.render_alertmanager_config(
        am_src,
        run / "alertmanager.yml",
        ports=ports,
        slack_url_file=slack_url_file,
        timings=alertmanager_timings,
    )

    base_env = {"PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    services_env = {**base_env, "LAB_PROFILE": "true", **ml_rag_env(workdir, ports, root)}
    services_env.update(service_env or {})
    local = "127.0.0.1"

    def uvicorn(app: str, port: int) -> list[str]:
        return [python, "-m", "uvicorn", app, "--host", local, "--port", str(port), "--no-access-log"]

    processes = [
        ProcessSpec(
            "receiver",
            [python, "-m", "receiver"],
            {
                **base_env,
                "RECEIVER_HOST": local,
                "RECEIVER_HTTP_PORT": str(ports.receiver_http),
                "RECEIVER_SMTP_PORT": str(ports.receiver_smtp),
                "RECEIVER_LOG": str(workdir / "receiver" / "notifications.jsonl"),
                "RECEIVER_ALERTMANAGER_URL": f"http://{local}:{ports.alertmanager}",
                "LAB_PROFILE": "true",
            },
            root,
            f"http://{local}:{ports.receiver_http}/health",
            f"http://{local}:{ports.receiver_http}/notifications",
        ),
        ProcessSpec(
            "ml_api",
            uvicorn("ml_api.app:app", ports.ml_api),
            services_env,
            root,
            f"http://{local}:{ports.ml_api}/ready",
            f"http://{local}:{ports.ml_api}/docs",
        ),
        ProcessSpec(
            "rag_api",
            uvicorn("rag_api.app:app", ports.rag_api),
            services_env,
            root,
            f"http://{local}:{ports.rag_api}/ready",
            f"http://{local}:{ports.rag_api}/docs",
        ),
        ProcessSpec(
            "prometheus",
            [
                # Scrapes start once the services answer: no TargetDown while rag_api loads its knowledge.
                *[python, "-m", "labctl.waitfor", "--timeout", "900"],
                *[
                    "--url",
                    f"http://{local}:{ports.ml_api}/ready",
                    "--url",
                    f"http://{local}:{ports.rag_api}/ready",
                ],
                "--",
                binaries["prometheus"],
                f"--config.file={prometheus_config}",
                f"--storage.tsdb.path={workdir / 'prometheus'}",
                f"--web.listen-address={local}:{ports.prometheus}",
                # Alert links ("Query" in Slack and email) point here rather than at the host name.
                f"--web.external-url=http://localhost:{ports.prometheus}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            base_env,
            root,
            f"http://{local}:{ports.prometheus}/-/ready",
            f"http://localhost:{ports.prometheus}",
        ),
        ProcessSpec(
            "alertmanager",
            [
                binaries["alertmanager"],
                f"--config.file={alertmanager_config}",
                f"--storage.path={workdir / 'alertmanager'}",
                "--cluster.listen-address=",
                f"--web.listen-address={local}:{ports.alertmanager}",
                f"--web.external-url=http://localhost:{ports.alertmanager}",
                "--log.level=warn",
            ],
            {},
            root,
            f"http://{local}:{ports.alertmanager}/-/ready",
            f"http://localhost:{ports.alertmanager}",
        ),
    ]

    grafana_provisioning = None
    grafana_cmd = grafana_binary() if grafana is not False else None
    if grafana and grafana_cmd is None:
        raise MissingTools(
            "Grafana is not installed: see https://grafana.com/docs/grafana/latest/setup-grafana/"
        )
    if grafana_cmd and (root / "grafana" / "provisioning").is_dir():
        grafana_provisioning = cfg.render_grafana_provisioning(
            root / "grafana" / "provisioning",
            run / "grafana-provisioning",
            ports=ports,
            dashboards_dir=root / "grafana" / "dashboards",
        )
        home = grafana_homepath(grafana_cmd[0])
        processes.append(
            ProcessSpec(
                "grafana",
                [*grafana_cmd, *([f"--homepath={home}"] if home else [])],
                {
                    "GF_PATHS_PROVISIONING": str(grafana_provisioning),
                    "GF_PATHS_DATA": str(workdir / "grafana"),
                    "GF_PATHS_LOGS": str(workdir / "logs"),
                    "GF_SERVER_HTTP_ADDR": local,
                    "GF_SERVER_HTTP_PORT": str(ports.grafana),
                    "GF_AUTH_ANONYMOUS_ENABLED": "true",
                    "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                    "GF_ANALYTICS_REPORTING_ENABLED": "false",
                    "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                    "PROMETHEUS_URL": f"http://{local}:{ports.prometheus}",
                    "ALERTMANAGER_URL": f"http://{local}:{ports.alertmanager}",
                },
                root,
                f"http://{local}:{ports.grafana}/api/health",
                f"http://localhost:{ports.grafana}",
            )
        )

    if traffic:
        processes.append(traffic_spec(root, workdir, ports, python, base_env))

    return LabPlan(
        workdir=workdir,
        ports=ports,
        rendered=Rendered(
            prometheus_config=prometheus_config,
            alertmanager_config=alertmanager_config,
            slack_url_file=slack_url_file,
            targets_dir=targets_dir,
            rules_dir=rules_dir or prom_src.parent / "rules",
            grafana_provisioning=grafana_provisioning,
        ),
        processes=processes,
        prepare_steps=prepare_steps(workdir, python),
    )


def native_targets_dir(root: Path) -> Path:
    """The native file_sd files: `prometheus/targets/*.yml` (compose mounts targets/docker/ over them)."""
    nested = root / "prometheus" / "targets" / "native"
    return nested if nested.is_dir() else root / "prometheus" / "targets"


def ml_rag_env(workdir: Path, ports: Ports, root: Path) -> dict[str, str]:
    """Where the services keep their state in this lab, and how ml_api reaches rag_api."""
    return {
        "ML_MODEL_DIR": str(workdir / "models"),
        "ML_RAG_URL": f"http://127.0.0.1:{ports.rag_api}",
        "RAG_CHROMA_PATH": str(workdir / "chroma"),
    }


def prepare_steps(workdir: Path, python: str) -> list[list[str]]:
    """Commands to run once before the lab starts: train the model when no artifact exists (a few seconds;
    ml_api would also train at start-up, but a separate step shows its figures and fails loudly)."""
    model_dir = workdir / "models"
    if (model_dir / "LATEST").exists():
        return []
    return [[python, "-m", "ml_api.train", "--model-dir", str(model_dir)]]


def traffic_spec(
    root: Path, workdir: Path, ports: Ports, python: str, base_env: dict[str, str]
) -> ProcessSpec:
    """Steady healthy traffic at a low rate (cheaper than Locust on a laptop; `simulations traffic` runs
    Locust for heavier load)."""
    ml = f"http://127.0.0.1:{ports.ml_api}"
    rag = f"http://127.0.0.1:{ports.rag_api}"
    env = {**base_env, "ML_API_URL": ml, "RAG_API_URL": rag}
    cmd = [python, "-m", "labctl.traffic", "--ml-url", ml, "--rag-url", rag, "--rate", "2"]
    wait = [python, "-m", "labctl.waitfor", "--url", f"{ml}/ready", "--url", f"{rag}/ready", "--"]
    return ProcessSpec("traffic", [*wait, *cmd], env, root, "", "", optional=True)


# ------------------------------------------------------------------------------------------------ health


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------------------------------- NativeStack


class NativeStack:
    """The whole lab as local processes, on free ports in a temporary work directory.

    with NativeStack(scrape_interval="1s", evaluation_interval="1s", max_for=5) as lab:
        httpx.post(lab.ml_url + "/predict", json=...)
        lab.query("ALERTS")

    Each process runs in its own process group; leaving the block stops every group (SIGTERM, then SIGKILL)
    and removes the temporary directory (unless `workdir` was given or `keep=True`).
    """

    def __init__(
        self,
        *,
        ports: Ports | None = None,
        workdir: Path | str | None = None,
        rules_dir: Path | None = None,
        max_for: float | None = None,
        scrape_interval: str | None = "1s",
        evaluation_interval: str | None = "1s",
        alertmanager_timings: Mapping[str, str] | None = None,
        traffic: bool = False,
        grafana: bool | None = False,
        service_env: Mapping[str, str] | None = None,
        startup_timeout: float = 300.0,
        keep: bool = False,
        root: Path = ROOT,
    ) -> None:
        self.ports = ports or Ports.free()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="obslab-"))
        self.keep = keep
        self.startup_timeout = startup_timeout
        self.plan = lab_plan(
            self.workdir,
            ports=self.ports,
            root=root,
            rules_dir=rules_dir,
            max_for=max_for,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
            alertmanager_timings=alertmanager_timings,
            traffic=traffic,
            grafana=grafana,
            service_env=service_env,
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_in: float | None = None

    # URLs -------------------------------------------------------------------------------------------
    @property
    def ml_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ml_api}"

    @property
    def rag_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rag_api}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.receiver_http}"

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    # lifecycle ----------------------------------------------------------------------------------------
    def __enter__(self) -> NativeStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        t0 = time.monotonic()
        _exit_on_sigterm()
        try:
            for step in self.plan.prepare_steps:
                subprocess.run(step, cwd=ROOT, check=True, capture_output=True)
            for spec in self.plan.processes:
                self._spawn(spec)
            self.wait_healthy(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0

    def _spawn(self, spec: ProcessSpec) -> None:
        log = self.log_path(spec.name).open("ab")
        self.procs[spec.name] = subprocess.Popen(
            spec.cmd,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() reaches its children too
            preexec_fn=_die_with_parent,
        )
        log.close()

    def wait_healthy(self, timeout: float) -> None:
        pending = {p.name: p.health_url for p in self.plan.processes if not p.optional}
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=len(pending) or 1) as pool:
            while pending:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise StartupError(
                            f"{name} exited with {proc.returncode} during start-up; its log "
                            f"({self.log_path(name)}):\n{tail(self.log_path(name))}"
                        )
                results = dict(zip(pending, pool.map(is_healthy, pending.values()), strict=True))
                for name, ok in results.items():
                    if ok:
                        del pending[name]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    logs = "\n".join(f"--- {n}:\n{tail(self.log_path(n), 15)}" for n in pending)
                    raise StartupError(f"not healthy after {timeout:.0f}s: {sorted(pending)}\n{logs}")
                time.sleep(0.3)

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # stragglers and any children left in the group
            proc.wait()
        self.procs.clear()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def check_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StartupError(f"{name} exited with {proc.returncode}:\n{tail(self.log_path(name))}")

    # crashes and restarts -----------------------------------------------------------------------------
    def send_signal(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to `name`'s whole process group, e.g. SIGSTOP/SIGCONT: hung, then running again."""
        _signal_group(self.procs[name], sig)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 10.0) -> int:
        """Send `sig` to `name`'s whole process group (SIGKILL: a crash, nothing shut down cleanly), wait
        until it is gone and return its exit status. It stays in `procs`, dead, until `restart(name)`."""
        self.send_signal(name, sig)
        return self.procs[name].wait(timeout)

    def restart(self, name: str, timeout: float = 60.0) -> float:
        """Start `name` again from the plan (same ports, configuration and data directory) once it has
        exited, and wait until it is healthy; returns the seconds that took.

        Call it from a long-lived thread (the one that started the lab): the child gets SIGTERM when the
        thread that spawned it ends (PR_SET_PDEATHSIG).
        """
        spec = next((p for p in self.plan.processes if p.name == name), None)
        if spec is None:
            raise KeyError(f"no process {name!r} in this lab: {[p.name for p in self.plan.processes]}")
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{name} is still running (pid {old.pid}): kill it first")
        t0 = time.monotonic()
        self._spawn(spec)
        proc = self.procs[name]
        while not (spec.optional or is_healthy(spec.health_url)):
            if proc.poll() is not None:
                raise StartupError(
                    f"{name} exited with {proc.returncode} on restart:\n{tail(self.log_path(name))}"
                )
            if time.monotonic() - t0 > timeout:
                raise StartupError(
                    f"{name} not healthy {timeout:.0f}s after restart:\n{tail(self.log_path(name))}"
                )
            time.sleep(0.2)
        return time.monotonic() - t0

    # queries ------------------------------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector (raises on a query error)."""
        r = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def firing_alerts(self) -> list[str]:
        """Names of the alerts Prometheus has firing (ALERTS{alertstate="firing"})."""
        return sorted({s["metric"]["alertname"] for s in self.query('ALERTS{alertstate="firing"}')})

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=10).json()

    def notifications(self, channel: str | None = None) -> list[dict[str, Any]]:
        params = {"channel": channel} if channel else {}
        r = httpx.get(f"{self.receiver_url}/notifications", params=params, timeout=10)
        r.raise_for_status()
        return r.json()["notifications"]


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the process that started it dies, even by SIGKILL,
    so a killed test run leaves no lab behind."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _exit_on_sigterm() -> None:
    """A SIGTERM to the owner becomes SystemExit, so `with NativeStack()` blocks still stop the lab."""
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
