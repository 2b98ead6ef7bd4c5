"""`python -m labctl demo` (`make demo`): bring the lab up, run every fault simulation, print the report.

- Docker: when `docker info` answers (and --native is not given), `docker compose up -d --wait`.
- Natively otherwise: a lab already running (started by `make lab`, or answering on the ports) is reused;
  else `python -m labctl up` is started in the background (its output in var/logs/demo-lab.log), so that
  `make status` and `make stop` know it.

Then `python -m simulations all` runs against it (extra arguments after `--` go to it). The lab keeps
running afterwards, to look at the dashboards; `--stop` stops it at the end (only a lab this demo started).
`--isolated` runs a throwaway lab instead (labctl.stack.NativeStack: free ports, a temporary directory, the
repository's timings and steady traffic), stopped at the end: it never touches a lab you are running.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from labctl import status as st
from labctl.config import ROOT, Ports

LOG = ROOT / "var" / "logs" / "demo-lab.log"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ready(ports: Ports, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> str | None:
    """None once every process answers and every Prometheus target is up; else what is still wrong."""
    deadline = time.monotonic() + timeout
    problems = ["not checked yet"]
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"`labctl up` exited with {proc.returncode}; its output ({LOG}):\n{_tail(LOG)}"
        status = st.collect(ports)
        problems = status.problems or ([] if status.targets else ["Prometheus has no targets yet"])
        if not problems:
            return None
        time.sleep(2)
    return "; ".join(problems)


def start_native(ports: Ports, timeout: float) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    """(the `labctl up` process if this demo started one, the problem if the lab is not ready)."""
    state = st.read_state()
    if state and st.pid_alive(int(state.get("pid", 0))):
        print(f"Reusing the lab started by `labctl up` (pid {state['pid']}).")
        return None, wait_until_ready(Ports(**state["ports"]), timeout)
    if not st.collect(ports).problems:
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
    )
    parser.add_argument(
        "--stop", action="store_true", help="stop the lab at the end (if this demo started it)"
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
    parser.add_argument("simulation_args", nargs=argparse.REMAINDER, help="after `--`: for `simulations all`")
    return parser


def simulate(ports: Ports, extra: list[str]) -> int:
    urls = [
        f"--ml-url=http://127.0.0.1:{ports.ml_api}",
        f"--rag-url=http://127.0.0.1:{ports.rag_api}",
        f"--prometheus-url=http://127.0.0.1:{ports.prometheus}",
        f"--alertmanager-url=http://127.0.0.1:{ports.alertmanager}",
        f"--receiver-url=http://127.0.0.1:{ports.receiver_http}",
    ]
    t0 = time.monotonic()
    rc = subprocess.run([sys.executable, "-m", "simulations", "all", *urls, *extra], cwd=ROOT).returncode
    print(f"\nsimulations all: exit {rc} after {time.monotonic() - t0:.0f}s")
    return rc


def run_isolated(extra: list[str], timeout: float) -> int:
    from labctl.stack import NativeStack, StartupError

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
    args = build_parser().parse_args(argv)
    extra = args.simulation_args[1:] if args.simulation_args[:1] == ["--"] else args.simulation_args
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
    if args.stop:
        if docker:
            subprocess.run(["docker", "compose", "down"], cwd=ROOT)
        elif proc is not None:
            subprocess.run([sys.executable, "-m", "labctl", "down"], cwd=ROOT)
        else:
            print("Not stopping the lab: this demo did not start it (`make stop` does).")
    else:
        print(
            "The lab keeps running: Prometheus alerts at "
            f"http://localhost:{ports.prometheus}/alerts, notifications at "
            f"http://localhost:{ports.receiver_http}/notifications"
            + (f", Grafana at http://localhost:{ports.grafana}" if docker or shutil.which("grafana") else "")
            + ". `make stop` stops it."
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
