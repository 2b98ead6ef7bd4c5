"""`python -m labctl.waitfor --url URL [--url URL ...] [--timeout S] -- COMMAND ...`

Waits until every URL answers 200, then replaces itself with COMMAND (same pid, so signals reach it).
The lab starts Prometheus this way: scraping services that are still loading would fire TargetDown at
every start (rag_api builds its knowledge base first, which can take a minute on a small machine).
"""

from __future__ import annotations

import argparse
import os
import sys

from labctl.client import LabClient
from labctl.wait import wait_all


def wait(urls: list[str], timeout: float) -> list[str]:
    """The URLs still not answering 200 after `timeout` seconds (empty: all ready)."""
    with LabClient() as client:
        return wait_all(urls, client.healthy, timeout=timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labctl.waitfor", description=__doc__)
    parser.add_argument("--url", action="append", default=[], help="health URL to wait for (repeatable)")
    parser.add_argument("--timeout", type=float, default=600, help="start anyway after this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    pending = wait(args.url, args.timeout)
    if pending:
        print(
            f"waitfor: still not ready after {args.timeout:.0f}s: {pending}; starting anyway", file=sys.stderr
        )
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
