"""`labctl up` (`make lab`): the lab in the foreground under the supervisor, until Ctrl-C or `make stop`.

Shutdown never depends on the console: with `make lab 2>&1 | tee lab.log`, Ctrl-C kills tee too, and every
write to stdout afterwards fails (EPIPE). All output goes through `Console`, which goes quiet then, and
SIGINT, SIGTERM and SIGHUP all lead to the same stop: every process group gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

from labctl import status as st
from labctl.client import LabClient, LabUrls
from labctl.plan import LabPlan
from labctl.supervisor import Console, Supervisor
from labctl.ui import lab_pages, render_pages
from labctl.wait import wait_all


def run(plan: LabPlan, timeout: float, stream: TextIO | None = None) -> int:
    """Run `plan` until a signal; returns the exit status."""
    console = Console(stream or sys.stdout)
    state: dict[str, Any] = {
        "pid": os.getpid(),
        "ports": plan.ports.as_dict(),
        "grafana": plan.has("grafana"),
        "workdir": str(plan.workdir),
        "started_at": time.time(),
        "children": {},
    }

    def save() -> None:
        state["children"] = supervisor.status()
        st.write_state(state)

    supervisor = Supervisor(plan.processes, plan.workdir / "logs", console=console, on_change=save)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.set())
    save()
    supervisor.start()
    threading.Thread(target=announce, args=(plan, supervisor, timeout, console), daemon=True).start()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        shutdown(supervisor, console)
    return 0


def shutdown(supervisor: Supervisor, console: Console) -> None:
    # A second Ctrl-C must not cut the shutdown short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console.write("\nStopping the lab ...\n")
    supervisor.stop()
    if (st.read_state() or {}).get("pid") == os.getpid():
        st.STATE_FILE.unlink(missing_ok=True)
    console.write("The lab is stopped.\n")


def announce(plan: LabPlan, supervisor: Supervisor, timeout: float, console: Console) -> None:
    """Once every process is healthy: the banner, with the pages that answer; else what is not healthy."""
    t0 = time.monotonic()
    urls = {p.name: p.health_url for p in plan.processes if not p.optional}
    with LabClient(LabUrls.from_ports(plan.ports)) as client:
        pending = wait_all(urls, lambda n: supervisor.stopping or client.healthy(urls[n]), timeout=timeout)
        if supervisor.stopping:
            return
        if pending:
            console.write(
                f"\n!!! not healthy after {timeout:.0f}s: {', '.join(sorted(pending))} "
                f"(see their lines above, or {plan.workdir / 'logs'})\n\n"
            )
            return
        console.write(banner(plan, client, time.monotonic() - t0))


def banner(plan: LabPlan, client: LabClient, seconds: float) -> str:
    pages = lab_pages(client, plan.ports, grafana_installed=plan.has("grafana"))
    lines = [
        "",
        "=" * 78,
        f"The lab is up (healthy in {seconds:.1f}s). Where to look:",
        *render_pages(pages),
    ]
    if plan.has("traffic"):
        lines.append("  Steady healthy traffic is running (start with --no-traffic to turn it off).")
    lines += [
        f"Logs: {plan.workdir / 'logs'}/<process>.log. A process that dies is restarted (`make status`).",
        "`make status` shows what is up; Ctrl-C (or `make stop`) stops everything.",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)
