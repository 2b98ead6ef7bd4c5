"""What is still running, read from /proc: the tests check that a lab leaves nothing behind."""

from __future__ import annotations

import os


def group_members(pgids: list[int]) -> list[str]:
    """Live (not zombie) processes whose process group is one of `pgids`: "pid: command line"."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) in pgids:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry}: {cmdline[:120]}")
        except (OSError, IndexError, ValueError):
            continue
    return found


def children_named(parent: int, name: str) -> list[int]:
    """Live child processes of `parent` whose command name is `name`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                comm, rest = fh.read().split(" (", 1)[1].rsplit(")", 1)
            fields = rest.split()
            if comm == name and fields[0] != "Z" and int(fields[1]) == parent:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found
