"""Helpers of the reliability reproductions (benchmarks.receiver_reliability, benchmarks.rag_reliability):
one PASS/FAIL line per check, the process behind a port, a metric's value, a subcommand table."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Verdicts:
    """Collects the checks' outcomes; `exit_code` is 1 when any failed."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, finding: str, passed: bool, figure: str) -> bool:
        print(f"{'PASS' if passed else 'FAIL'} {finding}: {figure}", flush=True)
        if not passed:
            self.failed.append(finding)
        return passed

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def pid_on_port(port: int) -> int:
    """The pid of the process listening on TCP `port` on this machine (Linux /proc; needs the same user or
    root)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as fh:
            next(fh)
            for line in fh:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(f"socket:[{inode}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    raise SystemExit(f"no process of this user listens on port {port}")


def port_of(url: str) -> int:
    return httpx.URL(url).port or 80


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(base: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when absent)."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def wait_until(what: str, condition: Callable[[], bool], timeout: float, every: float = 0.5) -> float:
    """Seconds until `condition()` held; SystemExit naming `what` after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if condition():
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(every)
    raise SystemExit(f"{what}: not within {timeout:g} s")


def run_commands(
    parser: argparse.ArgumentParser, commands: Mapping[str, Callable[[argparse.Namespace, Verdicts], None]]
) -> None:
    """`parser` gets a positional list of subcommands (or `all`); each runs in order; exit 1 on any FAIL."""
    parser.add_argument("checks", nargs="+", choices=[*commands, "all"], help="which reproductions to run")
    args = parser.parse_args()
    verdicts = Verdicts()
    for name in list(commands) if "all" in args.checks else args.checks:
        print(f"--- {name}", flush=True)
        commands[name](args, verdicts)
    print(f"{len(verdicts.failed)} failed: {', '.join(verdicts.failed) or '-'}")
    sys.exit(verdicts.exit_code)
