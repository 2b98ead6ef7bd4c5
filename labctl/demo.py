"""`python -m labctl demo` (`make demo`): bring the lab up, run every fault simulation, print the report.

- Docker: when `docker info` answers (and --native is not given), `docker compose up -d --wait`.
- Natively otherwise: a lab already running (started by `make lab`, or answering on the ports) is reused;
  else `python -m labctl up` is started in the background (its output in var/logs/demo-lab.log), so that
  `make status` and `make stop` know it.

Then `python -m simulations all` runs against it: every option this command does not know goes to it
(`make demo ARGS="--timeout 240"`, or after `--`). At the end the demo stops the lab if it started it (a lab
that was already running keeps running); `--keep` leaves it running, to look at the dashboards, until
`make stop`. `--isolated` runs a throwaway lab instead (labctl.stack.NativeStack: free ports, a temporary
directory, the repository's timings and steady traffic), stopped at the end: it never touches a lab you are
running.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from labctl import status as st
from labctl.binaries import grafana_binary
from labctl.client import LabClient, LabUrls
from labctl.config import ROOT, Ports
from labctl.plan import StartupError, tail
from labctl.ui import lab_pages, render_pages
from labctl.wait import WaitTimeout, wait_until

LOG = ROOT / "var" / "logs" / "demo-lab.log"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def wait_until_ready(ports: Ports, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> str | None:
    """None once every process answers and every Prometheus target is up; else what is still wrong."""
    last: list[str] = ["not checked yet"]

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise StartupError(f"`labctl up` exited with {proc.returncode}; its output ({LOG}):\n{tail(LOG)}")
        status = st.collect(ports, pages=False)
        last[:] = status.problems or ([] if status.targets else ["Prometheus has no targets yet"])
        return not last

    try:
        wait_until(ready, timeout=timeout, every=2)
    except StartupError as exc:
        return str(exc)
    except WaitTimeout:
        return "; ".join(last)
    return None


def start_native(ports: Ports, timeout: float) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    """(the `labctl up` process if this demo started one, the problem if the lab is not ready)."""
    state = st.read_state()
    if state and st.pid_alive(int(state.get("pid", 0))):
        print(f"Reusing the lab started by `labctl up` (pid {state['pid']}).")
        return None, wait_until_ready(Ports(**state["ports"]), timeout)
    if not st.collect(ports, pages=False).problems:
        print("Reusing the lab that already answers on the default ports.")
        return None, None
    LOG.parent.mkdir(parents=True, exist_ok=True)
    print(f"Starting the lab natively (`python -m labctl up`, output in {LOG.relative_to(ROOT)}) ...")
    with LOG.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labctl", "up"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this demo: the lab keeps running for the dashboards
        )
    t0 = time.monotonic()
    problem = wait_until_ready(ports, timeout, proc)
    if problem is None:
        print(f"The lab is up (healthy in {time.monotonic() - t0:.0f}s).")
    return proc, problem


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m labctl demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # every option it does not know belongs to `simulations all`
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the lab this demo started running at the end"
    )
    parser.add_argument("--native", action="store_true", help="run natively even when Docker answers")
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="a throwaway native lab on free ports in a temporary directory, stopped at the end",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=600, help="seconds to wait for the lab to be healthy"
    )
    parser.epilog = "Any other option goes to `python -m simulations all` (its --help lists them)."
    return parser


def simulate(ports: Ports, extra: list[str]) -> int:
    urls = LabUrls.from_ports(ports).cli_args()
    t0 = time.monotonic()
    rc = subprocess.run([sys.executable, "-m", "simulations", "all", *urls, *extra], cwd=ROOT).returncode
    print(f"\nsimulations all: exit {rc} after {time.monotonic() - t0:.0f}s")
    return rc


def run_isolated(extra: list[str], timeout: float) -> int:
    from labctl.stack import NativeStack

    print("Starting a throwaway lab on free ports (lab timings, steady traffic) ...")
    t0 = time.monotonic()
    try:
        stack = NativeStack(
            scrape_interval=None, evaluation_interval=None, traffic=True, startup_timeout=timeout
        )
        stack.start()
    except StartupError as exc:
        print(f"The lab did not start: {exc}")
        return 2
    try:
        problem = wait_until_ready(stack.ports, timeout)
        if problem is not None:
            print(f"The lab is not ready: {problem}")
            return 2
        print(f"The lab is up (healthy in {time.monotonic() - t0:.0f}s, work directory {stack.workdir}).")
        return simulate(stack.ports, extra)
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    if args.isolated:
        return run_isolated(extra, args.startup_timeout)
    ports = Ports.from_env()
    docker = not args.native and docker_answers()
    proc = None
    if docker:
        print("Docker answers: `docker compose up -d --wait` ...")
        if subprocess.run(["docker", "compose", "up", "-d", "--wait"], cwd=ROOT).returncode != 0:
            print(
                "docker compose up failed (see above); `python -m labctl demo --native` runs without Docker."
            )
            return 2
        problem = wait_until_ready(ports, args.startup_timeout)
    else:
        proc, problem = start_native(ports, args.startup_timeout)
    if problem is not None:
        print(f"The lab is not ready after {args.startup_timeout:.0f}s: {problem}")
        print("`make status` shows what is up.")
        return 2
    rc = simulate(ports, extra)
    finish(ports, docker=docker, started=docker or proc is not None, keep=args.keep)
    return rc


def finish(ports: Ports, *, docker: bool, started: bool, keep: bool) -> None:
    """Stop the lab this demo started (unless --keep); say where to look when it keeps running."""
    if started and not keep:
        print("Stopping the lab this demo started (`--keep` leaves it running) ...")
        down = ["docker", "compose", "down"] if docker else [sys.executable, "-m", "labctl", "down"]
        subprocess.run(down, cwd=ROOT)
        return
    with LabClient(LabUrls.from_ports(ports)) as client:
        pages = lab_pages(client, ports, grafana_installed=docker or grafana_binary() is not None)
    print("The lab keeps running (`make stop` stops it). Where to look:")
    print("\n".join(render_pages(pages)))


if __name__ == "__main__":
    sys.exit(main())
