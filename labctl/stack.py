"""NativeStack: the whole lab as local processes, for the tests and `labctl demo --isolated`.

It runs the same process plan (labctl.plan) through the same supervisor (labctl.supervisor) as `make lab`,
on free ports in a temporary work directory, with its logs in `<workdir>/logs/`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from labctl.binaries import MissingTools, monitoring_binaries
from labctl.client import LabClient, LabUrls
from labctl.config import ROOT, Ports
from labctl.plan import LabPlan, ProcessSpec, StartupError, lab_plan, tail
from labctl.supervisor import Backoff, Supervisor
from labctl.wait import WaitTimeout, wait_all, wait_until

# What the modules that used to live here are imported as by the tests and scripts.
__all__ = ["MissingTools", "NativeStack", "ProcessSpec", "StartupError", "lab_plan", "monitoring_binaries"]


# A test lab: 1 s scrapes and rule evaluations, no background traffic, no Grafana.
TEST_OPTIONS: dict[str, Any] = {
    "scrape_interval": "1s",
    "evaluation_interval": "1s",
    "traffic": False,
    "grafana": False,
}


class NativeStack:
    """The whole lab as local processes, on free ports in a temporary work directory.

    with NativeStack(scrape_interval="1s", evaluation_interval="1s", max_for=5) as lab:
        httpx.post(lab.ml_url + "/predict", json=...)
        lab.client.query("ALERTS")

    A process that dies is restarted by the supervisor; `kill(name)` stops one on purpose (a crash that
    stays down) until `restart(name)`. Leaving the block stops every process group (SIGTERM, then SIGKILL)
    and removes the temporary directory (unless `workdir` was given or `keep=True`).
    """

    def __init__(
        self,
        *,
        ports: Ports | None = None,
        workdir: Path | str | None = None,
        startup_timeout: float = 300.0,
        keep: bool = False,
        root: Path = ROOT,
        backoff: Backoff = Backoff(),
        **options: Any,
    ) -> None:
        """`options`: labctl.plan.Options (max_for, scrape_interval, service_env ...) over TEST_OPTIONS."""
        self.ports = ports or Ports.free()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="obslab-"))
        self.keep = keep
        self.startup_timeout = startup_timeout
        self.plan: LabPlan = lab_plan(
            self.workdir, ports=self.ports, root=root, **{**TEST_OPTIONS, **options}
        )
        self.supervisor = Supervisor(self.plan.processes, self.workdir / "logs", backoff=backoff)
        self.urls = LabUrls.from_ports(self.ports)
        self.client = LabClient(self.urls)
        self.started_in: float | None = None

    # URLs -------------------------------------------------------------------------------------------
    ml_url = property(lambda self: self.urls.ml)
    rag_url = property(lambda self: self.urls.rag)
    prometheus_url = property(lambda self: self.urls.prometheus)
    alertmanager_url = property(lambda self: self.urls.alertmanager)
    receiver_url = property(lambda self: self.urls.receiver)

    def log_path(self, name: str) -> Path:
        return self.supervisor.child(name).log_path

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """name -> its current process (a new one after each restart)."""
        return {n: c.proc for n, c in self.supervisor.children.items() if c.proc is not None}

    def pid(self, name: str) -> int | None:
        return self.supervisor.child(name).pid

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
            self.supervisor.start()
            self.wait_healthy(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0

    def _health_urls(self) -> dict[str, str]:
        return {p.name: p.health_url for p in self.plan.processes if not p.optional}

    def wait_healthy(self, timeout: float) -> None:
        """Every process answers its health URL; StartupError if one exits on the way or time runs out."""
        urls = self._health_urls()
        pending = wait_all(
            urls, lambda name: self.client.healthy(urls[name]), timeout=timeout, check=self._no_crash
        )
        if pending:
            logs = "\n".join(f"--- {n}:\n{tail(self.log_path(n), 15)}" for n in pending)
            raise StartupError(f"not healthy after {timeout:.0f}s: {sorted(pending)}\n{logs}")

    def _no_crash(self) -> None:
        for name, child in self.supervisor.children.items():
            if child.restarts:
                raise StartupError(
                    f"{name} exited ({child.last_exit}) during start-up; its log "
                    f"({child.log_path}):\n{tail(child.log_path)}"
                )

    def stop(self, timeout: float = 10.0) -> None:
        self.supervisor.stop(timeout)
        self.client.close()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def check_running(self) -> None:
        """StartupError naming any process that is down now or has been restarted."""
        for name, state in self.supervisor.status().items():
            if not state["running"] or state["restarts"]:
                raise StartupError(
                    f"{name}: running={state['running']}, restarts={state['restarts']}, "
                    f"last exit {state['last_exit']}:\n{tail(self.log_path(name))}"
                )

    # crashes and restarts -----------------------------------------------------------------------------
    def send_signal(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to `name`'s whole process group, e.g. SIGSTOP/SIGCONT: hung, then running again."""
        self.supervisor.send_signal(name, sig)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 10.0) -> int | None:
        """Crash `name` and keep it down: `sig` to its process group (SIGKILL: nothing shut down cleanly),
        wait until it is gone, return its exit status. The supervisor holds it until `restart(name)`."""
        return self.supervisor.hold(name, sig, timeout)

    def restart(self, name: str, timeout: float = 60.0) -> float:
        """Start `name` again after `kill` (same ports, configuration and data directory) and wait until it
        is healthy; returns the seconds that took."""
        t0 = time.monotonic()
        self.supervisor.release(name)
        self.wait_process_healthy(name, timeout)
        return time.monotonic() - t0

    def wait_process_healthy(self, name: str, timeout: float) -> None:
        spec = self.plan.spec(name)
        if spec.optional:
            return
        try:
            wait_until(lambda: self.client.healthy(spec.health_url), timeout=timeout, every=0.2, what=name)
        except WaitTimeout as exc:
            raise StartupError(f"{exc} after its restart:\n{tail(self.log_path(name))}") from None


def _exit_on_sigterm() -> None:
    """A SIGTERM to the owner becomes SystemExit, so `with NativeStack()` blocks still stop the lab."""
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
