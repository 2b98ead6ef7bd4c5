"""Docs that run: the shell commands of README.md and docs/stage-*.md, and the outputs they document.

A doc is a sequence of steps, in reading order:
- each command of a fenced `bash` block (what a learner pastes), unless the block says `# needs: WHAT`
  (docker, grafana, root, slack, smtp, openai, cluster, minutes) or the command is one a lab stands in for;
- each *marked output*: a fenced block right after an `<!-- output: COMMAND -->` comment. COMMAND is run
  at that point of the doc (after the commands before it) and its output is what the block shows.

`.venv/bin/python -m labctl.docblocks refresh [DOC ...]` replays each doc that has marked outputs against a
native lab on free ports (the same lab tests/docs/test_docs_commands.py uses) and rewrites every marked block
with what its command printed now, ports written back as the defaults. tests/docs/test_docs_commands.py
replays every doc and checks each marked block's SHAPE (its lines with the numbers taken out, or its JSON
keys) against a fresh run: figures move from run to run, fields and series must not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from labctl.config import ROOT, rewrite_ports
from labctl.stack import NativeStack
from labctl.wait import wait_until

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("stage-*.md"), key=lambda p: int(p.name.split("-")[1])),
]
SHELL_FENCE = r"^[ \t]*```(?:bash|sh|shell|console)\n(?P<shell>.*?)^[ \t]*```"
OUTPUT_BLOCK = r"^[ \t]*<!-- output: (?P<command>.*?) -->\n[ \t]*```(?P<lang>\w*)\n(?P<body>.*?)^[ \t]*```"
STEP = re.compile(f"{SHELL_FENCE}|{OUTPUT_BLOCK}", re.S | re.M)
NEEDS = re.compile(r"^\s*#\s*needs:\s*(.+)$", re.M)
LAB_STANDS_IN = (re.compile(r"^make lab\b"), re.compile(r"\buvicorn\b"), re.compile(r"python -m labctl up\b"))
SET_UP = (re.compile(r"^make (setup|tools|browser|test)\b"),)
SLEEP = re.compile(r"^sleep (\d+)$")
SLEEP_CAP = 15  # the docs lab's alerts wait a few seconds (max_for), not the docs' minutes
COMMAND_TIMEOUT = 240  # seconds; the longest is a simulation with its own --timeout
# The lab the docs are replayed on: short `for:` and Alertmanager waits, drift recomputed every second.
DOCS_LAB_OPTIONS: dict[str, Any] = {
    "max_for": 5,
    "alertmanager_timings": {"group_wait": "1s", "group_interval": "1s"},
    "service_env": {"ML_DRIFT_INTERVAL_SECONDS": "1", "LOG_LEVEL": "WARNING"},
}


@dataclass(frozen=True)
class Command:
    """A command a learner runs; `skip` says why it is not run here (None: it is)."""

    doc: str
    text: str
    skip: str | None = None


@dataclass(frozen=True)
class Output:
    """A marked output block: `command` prints what `body` shows; `span` is body's place in the file."""

    doc: str
    command: str
    lang: str
    body: str
    span: tuple[int, int]


Step = Command | Output


def commands(text: str) -> list[str]:
    """A block's commands: comments dropped, `\\` continuations and multi-line quotes joined."""
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.strip().startswith("#")):
            continue
        current = f"{current}\n{line}" if current else line.strip()
        if current.endswith("\\") or current.count("'") % 2:
            continue
        out.append(current)
        current = ""
    return out


def _skip_reason(command: str, needs: list[str], known_broken: Mapping[str, str]) -> str | None:
    if needs:
        return f"needs: {', '.join(needs)}"
    if any(p.search(command) for p in LAB_STANDS_IN):
        return "the test lab runs this"
    if broken := next((why for key, why in known_broken.items() if key in command), None):
        return f"known broken: {broken}"
    if any(p.search(command) for p in SET_UP):
        return "make test ran it before this test"
    return None


def doc_steps(path: Path, known_broken: Mapping[str, str] | None = None) -> list[Step]:
    """The commands and marked outputs of one doc, in reading order."""
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    steps: list[Step] = []
    for match in STEP.finditer(path.read_text(encoding="utf-8")):
        if match["shell"] is not None:
            needs = NEEDS.findall(match["shell"])
            for command in commands(match["shell"]):
                steps.append(Command(name, command, _skip_reason(command, needs, known_broken or {})))
        else:
            command = " ".join(match["command"].split())
            steps.append(Output(name, command, match["lang"], match["body"], match.span("body")))
    return steps


# Shapes ---------------------------------------------------------------------------------------------------
# A number with its unit (41s, 2.5ms, 30%), a hex id, or an ellipsis where a run printed more.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?\d[\d_,]*(?:\.\d+)?(?:e[-+]?\d+)?(?:ms|s|%)?(?![\w])|\b[0-9a-f]{8,}\b|…"
)
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d| UTC)?")
_VERSION = re.compile(r"\bsev-\d{8}T\d{6,}Z\b")


def line_shape(line: str) -> str:
    """A line with what changes between runs (numbers, times, ids, model versions, spacing) taken out."""
    line = _VERSION.sub("sev-#", _ISO_TIME.sub("TIME", line))
    return " ".join(_NUMBER.sub("#", line).split())


def json_keys(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value (`a.b`, list items as `a[]`)."""
    if isinstance(value, dict):
        paths = {f"{prefix}{k}" for k in value}
        for k, v in value.items():
            paths |= json_keys(v, f"{prefix}{k}.")
        return paths
    if isinstance(value, list):
        return set().union(*(json_keys(v, f"{prefix.rstrip('.')}[].") for v in value))
    return set()


def _json_values(text: str) -> list[Any] | None:
    """The JSON of a block: the whole text, or one value per line; None when it is not JSON."""
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


def shape_differences(documented: str, produced: str) -> list[str]:
    """What the documented block shows that the produced output lacks: JSON key paths, or line shapes."""
    doc_json, out_json = _json_values(documented), _json_values(produced)
    if doc_json is not None and out_json is not None and doc_json:
        if len(doc_json) != len(out_json):
            return [f"{len(doc_json)} JSON values documented, {len(out_json)} produced"]
        missing = []
        for i, (d, o) in enumerate(zip(doc_json, out_json, strict=True)):
            missing += [f"value {i + 1}: key {k}" for k in sorted(json_keys(d) - json_keys(o))]
        return missing
    produced_shapes = {line_shape(line) for line in produced.splitlines()}
    return [
        f"line {line.strip()!r}"
        for line in documented.splitlines()
        if line.strip() and line_shape(line) not in produced_shapes
    ]


# Running against a lab -------------------------------------------------------------------------------------
def command_env(lab: NativeStack, state_dir: Path) -> dict[str, str]:
    """The environment of a replayed command: the lab's ports, this checkout, a labctl state of its own."""
    from lab_common.endpoints import ENDPOINTS

    ports = {e.env: str(getattr(lab.ports, name)) for name, e in ENDPOINTS.items()}
    return {
        **os.environ,
        **ports,
        "PYTHONPATH": str(ROOT),
        "LABCTL_STATE_FILE": str(state_dir / "labctl.json"),  # never the user's running lab
        "COLUMNS": "200",
    }


def reset_lab(lab: NativeStack) -> None:
    """Undo what a stage's exercises leave behind: faults, the drift window, the receiver's fail window."""
    for service in ("ml_api", "rag_api"):
        lab.client.clear_faults(service)
    lab.client.reset_drift()
    httpx.post(f"{lab.receiver_url}/admin/fail", json={"seconds": 0}, timeout=10)


def prepared(command: str, lab: NativeStack) -> str:
    """The command as run against `lab`: its ports, no venv rebuild, sleeps cut to SLEEP_CAP."""
    text = rewrite_ports(command, lab.ports.replacements())
    # `make test` has set the venv up before this runs: a `make status` here must not rebuild it (a worktree
    # sharing another checkout's venv would otherwise reinstall it).
    text = re.sub(r"^make (?=\w)", "make -o .venv/.installed ", text)
    if match := SLEEP.match(text.strip()):
        text = f"sleep {min(int(match.group(1)), SLEEP_CAP)}"
    return text


def run_command(command: str, lab: NativeStack, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", prepared(command, lab)],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def as_documented(output: str, lab: NativeStack) -> str:
    """An output as the docs show it: the lab's free ports written back as the default ones."""
    defaults = {port: default for default, port in lab.ports.replacements().items()}
    return rewrite_ports(output, defaults).rstrip("\n") + "\n"


def wait_scraped(lab: NativeStack) -> None:
    """As a learner has after the banner: Prometheus scrapes every service already."""

    def scraped() -> bool:
        targets = lab.client.targets()
        return bool(targets) and all(t.get("health") == "up" for t in targets)

    wait_until(scraped, timeout=60, what="every Prometheus target up")


# refresh ---------------------------------------------------------------------------------------------------
def refresh_doc(path: Path, lab: NativeStack, env: Mapping[str, str]) -> list[str]:
    """Replay one doc up to its last marked output and rewrite the marked blocks; returns the problems."""
    steps = doc_steps(path)
    last = max((i for i, s in enumerate(steps) if isinstance(s, Output)), default=-1)
    problems: list[str] = []
    bodies: list[tuple[tuple[int, int], str]] = []
    reset_lab(lab)
    for step in steps[: last + 1]:
        if isinstance(step, Command) and step.skip:
            continue
        text = step.text if isinstance(step, Command) else step.command
        r = run_command(text, lab, env)
        if r.returncode != 0:
            problems.append(f"{step.doc}: exit {r.returncode}: {text}\n{(r.stdout + r.stderr)[-800:]}")
        if isinstance(step, Output):
            bodies.append((step.span, as_documented(r.stdout, lab)))
    path.write_text(fill_blocks(path.read_text(encoding="utf-8"), bodies), encoding="utf-8")
    return problems


def fill_blocks(source: str, bodies: list[tuple[tuple[int, int], str]]) -> str:
    """`source` with each (span, body) written in place of what the span held (spans in file order)."""
    for (start, end), body in reversed(bodies):
        source = source[:start] + body + source[end:]
    return source


def docs_lab() -> NativeStack:
    return NativeStack(**DOCS_LAB_OPTIONS)


def refresh(paths: list[Path]) -> int:
    marked = [p for p in paths if any(isinstance(s, Output) for s in doc_steps(p))]
    if not marked:
        print("no marked outputs (`<!-- output: COMMAND -->` before a fenced block) in", *paths)
        return 0
    state_dir = ROOT / "var" / "docblocks"
    state_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with docs_lab() as lab:
        wait_scraped(lab)
        env = command_env(lab, state_dir)
        for path in marked:
            t0 = time.monotonic()
            problems += refresh_doc(path, lab, env)
            print(f"refreshed {path.relative_to(ROOT)} in {time.monotonic() - t0:.0f}s")
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _list(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        for step in doc_steps(path):
            if isinstance(step, Output):
                yield f"{step.doc}: {step.command}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labctl.docblocks", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["refresh", "list"])
    parser.add_argument("docs", nargs="*", type=Path, help="docs to process (default: README and stages)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.docs] or DOCS
    if args.action == "list":
        print("\n".join(_list(paths)))
        return 0
    return refresh(paths)


if __name__ == "__main__":
    raise SystemExit(main())
