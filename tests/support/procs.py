"""What is still running, read from /proc: the tests check that a lab leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator


def _live() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the stat fields after it) of every live (not zombie) process; fields[1] is the
    parent pid, fields[2] the process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                comm, rest = fh.read().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue  # gone while we read, or not ours to read
        fields = rest.split()
        if fields and fields[0] != "Z":
            yield int(entry), comm, fields


def group_members(pgids: list[int]) -> list[str]:
    """Live processes whose process group is one of `pgids`: "pid: command line"."""
    found = []
    for pid, _, fields in _live():
        try:
            if int(fields[2]) not in pgids:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found.append(f"{pid}: {cmdline[:120]}")
    return found


def children_named(parent: int, name: str) -> list[int]:
    """Live child processes of `parent` whose command name is `name`."""
    return [
        pid for pid, comm, fields in _live() if comm == name and len(fields) > 1 and int(fields[1]) == parent
    ]
