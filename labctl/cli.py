"""`python -m labctl up|status|down|demo`."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

from labctl import status as st
from labctl import up
from labctl.binaries import MissingTools, grafana_binary
from labctl.config import PORT_ENV, ROOT, Ports
from labctl.plan import StartupError, lab_plan
from labctl.wait import WaitTimeout, wait_until

VAR = st.VAR
SLACK_SECRET = ROOT / "alertmanager" / "secrets" / "slack_webhook_url"
SLACK_DEFAULT = ROOT / "alertmanager" / "slack_webhook_url.default"


def _ports(args: argparse.Namespace) -> Ports:
    ports = Ports.from_env()
    overrides = {
        name: getattr(args, f"{name}_port") for name in PORT_ENV if getattr(args, f"{name}_port", None)
    }
    return replace(ports, **overrides)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _running_state() -> dict | None:
    state = st.read_state()
    if state and st.pid_alive(int(state.get("pid", 0))):
        return state
    return None


# -------------------------------------------------------------------------------------------------- up


def cmd_up(args: argparse.Namespace) -> int:
    if state := _running_state():
        print(f"The lab is already running (labctl pid {state['pid']}): `make status`, or `make stop` first.")
        return 1
    ports = _ports(args)
    busy = [f"{name} port {port}" for name, port in ports.as_dict().items() if _listening(port)]
    if args.no_grafana or not _grafana_installed():
        busy = [b for b in busy if not b.startswith("grafana")]
    if busy:
        print(
            "Something already listens on: " + ", ".join(busy) + ".\n"
            "Stop it, or choose other ports (e.g. ML_PORT=8100 PROMETHEUS_PORT=9190 make lab; "
            "`python -m labctl up --help` lists the flags)."
        )
        return 1

    # A real Slack webhook goes in the secrets file; by default it points at the local receiver.
    if not SLACK_SECRET.exists() and SLACK_DEFAULT.exists():
        SLACK_SECRET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SLACK_DEFAULT, SLACK_SECRET)
        print(f"created {SLACK_SECRET.relative_to(ROOT)} from the default (the local receiver)")

    try:
        plan = lab_plan(
            VAR,
            ports=ports,
            traffic=not args.no_traffic,
            grafana=False if args.no_grafana else None,
            slack_url_source=SLACK_SECRET if SLACK_SECRET.exists() else SLACK_DEFAULT,
            keep_metrics=args.keep_metrics,
        )
    except MissingTools as exc:
        print(exc)
        return 2
    except StartupError as exc:
        print(f"cannot start: {exc}")
        return 1

    if plan.previous_metrics:
        print(
            f"Prometheus starts on an empty TSDB; the previous run's is in {plan.previous_metrics} "
            "(--keep-metrics starts on it, and the anomaly alerts then judge the new lab's first minutes "
            "against the old run's baseline)"
        )
    for step in plan.prepare_steps:
        print("preparing:", " ".join(step))
        if subprocess.run(step, cwd=ROOT).returncode != 0:
            print("preparation failed (see above)")
            return 1

    return up.run(plan, args.timeout)


def _grafana_installed() -> bool:
    return grafana_binary() is not None


# ---------------------------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    state = _running_state()
    if state:
        ports = Ports(**state["ports"])
        grafana = bool(state.get("grafana"))
        print(f"labctl is running (pid {state['pid']}, up {time.time() - state['started_at']:.0f}s)\n")
    else:
        ports = _ports(args)
        grafana = _grafana_installed()
        print("No lab started by `labctl up` is running; checking the configured ports anyway.\n")
    status = st.collect(ports, with_grafana=grafana, supervised=(state or {}).get("children"))
    print(st.render(status))
    if not status.ok:
        if not any(status.processes.values()):
            print("\nNothing is running: start the lab with `make lab`.")
        return 1
    return 0


# ------------------------------------------------------------------------------------------------ down


def cmd_down(args: argparse.Namespace) -> int:
    state = st.read_state()
    if not state:
        print(f"No lab is running (no {st.STATE_FILE}): nothing to stop.")
        return 0
    pid = int(state.get("pid", 0))
    if st.pid_alive(pid):
        os.kill(pid, signal.SIGTERM)  # the supervisor stops every process, then labctl exits
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: not st.pid_alive(pid), timeout=args.timeout, every=0.2)
    # Whatever is left (labctl killed hard, or a process ignoring SIGTERM): its process group goes.
    leftovers = 0
    for name, child in (state.get("children") or {}).items():
        child_pid = child.get("pid") if isinstance(child, dict) else child
        if child_pid and st.pid_alive(int(child_pid)):
            leftovers += 1
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(child_pid), signal.SIGKILL)
            print(f"killed leftover {name} (pid {child_pid})")
    if st.pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    st.STATE_FILE.unlink(missing_ok=True)
    print(f"The lab is stopped (labctl pid {pid}{f', {leftovers} leftovers killed' if leftovers else ''}).")
    return 0


# ------------------------------------------------------------------------------------------------ demo


def cmd_demo(args: argparse.Namespace) -> int:
    """`make demo`: labctl.demo brings a lab up (or reuses one) and runs every simulation with its report."""
    from labctl import demo

    return demo.main(args.rest)


# ------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def port_flags(p: argparse.ArgumentParser) -> None:
        for name, (var, default) in PORT_ENV.items():
            flag = "--" + name.replace("_", "-") + "-port"
            p.add_argument(flag, dest=f"{name}_port", type=int, help=f"default ${var} or {default}")

    up = sub.add_parser("up", help="run the lab in the foreground (Ctrl-C stops it)")
    port_flags(up)
    up.add_argument("--no-traffic", action="store_true", help="no steady background traffic")
    up.add_argument("--no-grafana", action="store_true", help="do not start Grafana even if installed")
    up.add_argument(
        "--keep-metrics",
        action="store_true",
        help="start Prometheus on the previous run's TSDB (default: an empty one, the old one kept aside)",
    )
    up.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for every process to be healthy"
    )
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="what is up, the targets, firing alerts, notifications")
    port_flags(status)
    status.set_defaults(func=cmd_status)

    down = sub.add_parser("down", help="stop a lab started by `labctl up`")
    down.add_argument("--timeout", type=float, default=20)
    down.set_defaults(func=cmd_down)

    demo = sub.add_parser(
        "demo", help="run every fault simulation and print the report", add_help=False, prefix_chars="\0"
    )
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="options of labctl.demo (--help lists them)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
