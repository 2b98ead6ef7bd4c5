"""Docs that run: every shell command of README.md and docs/stage-*.md, executed in order against a native
test lab, as a new user pastes them into a fresh clone (after `make test`'s own set-up).

What is not executed, and why, is written once here or in the docs:
- a block with a `# needs: WHAT` line (docker, grafana, root, slack, smtp, openai, cluster, minutes) needs
  something a test machine does not give it;
- commands the test lab stands in for (LAB_STANDS_IN: `make lab`, the services' own uvicorn) and those
  `make test` already ran before this test (SET_UP: `make setup`, `make tools`, `make test` itself).

The lab runs on free ports: each command gets them (ML_PORT=..., read by labctl and the simulations) and its
`localhost:8000`-style addresses are rewritten to them. Its alerts' `for:` are cut to a few seconds, so a
`sleep N` waiting for an alert is cut to at most SLEEP_CAP seconds. A command passes when it exits 0 and,
for curl (which exits 0 on any HTTP status), when the answer is not a 404 or a 5xx.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from labctl.config import ROOT, rewrite_ports
from labctl.stack import NativeStack
from labctl.wait import wait_until
from tests.support.lab import native_stack

pytestmark = pytest.mark.timeout(900)

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("stage-*.md"), key=lambda p: int(p.name.split("-")[1])),
]
SHELL_FENCE = re.compile(r"^[ \t]*```(?:bash|sh|shell|console)\n(.*?)^[ \t]*```", re.S | re.M)
NEEDS = re.compile(r"^\s*#\s*needs:\s*(.+)$", re.M)
LAB_STANDS_IN = (re.compile(r"^make lab\b"), re.compile(r"\buvicorn\b"), re.compile(r"python -m labctl up\b"))
SET_UP = (re.compile(r"^make (setup|tools|browser|test)\b"),)
# Commands that fail on the native test lab for a reason outside the docs, each with its reason; reported
# among the skipped ones so it stays visible. Remove an entry once its cause is fixed.
KNOWN_BROKEN: dict[str, str] = {}
SLEEP = re.compile(r"^sleep (\d+)$")
SLEEP_CAP = 15
COMMAND_TIMEOUT = 240  # seconds; the longest is a simulation with its own --timeout
BUDGET = 720  # seconds for every command together (measured: 56 commands in about 540 s on 2 busy cores)
CURL_FAILURE = re.compile(r'"detail":\s*"Not Found"|Internal Server Error|<title>404')


@dataclass(frozen=True)
class Command:
    doc: str
    text: str


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


def doc_commands(paths: list[Path]) -> tuple[list[Command], list[str]]:
    """(what to run, what is skipped and why) for the docs in `paths`, in order."""
    run: list[Command] = []
    skipped: list[str] = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix()
        for block in SHELL_FENCE.findall(path.read_text(encoding="utf-8")):
            needs = NEEDS.findall(block)
            for command in commands(block):
                first = command.splitlines()[0]
                if needs:
                    skipped.append(f"{name}: {first}  (needs: {', '.join(needs)})")
                elif any(p.search(command) for p in LAB_STANDS_IN):
                    skipped.append(f"{name}: {first}  (the test lab runs this)")
                elif broken := next((why for key, why in KNOWN_BROKEN.items() if key in command), None):
                    skipped.append(f"{name}: {first}  (known broken: {broken})")
                elif any(p.search(command) for p in SET_UP):
                    skipped.append(f"{name}: {first}  (make test ran it before this test)")
                else:
                    run.append(Command(name, command))
    return run, skipped


def test_blocks_split_into_commands() -> None:
    block = "# a comment\ncurl -s a \\\n  -d '{\"x\": [\n  1]}'\nmake status   # trailing words\n\n"
    assert commands(block) == ["curl -s a \\\n  -d '{\"x\": [\n  1]}'", "make status   # trailing words"]


def test_marked_and_stand_in_commands_are_skipped_with_the_reason(tmp_path: Path) -> None:
    doc = ROOT / "var" / "test-docs-commands.md"
    doc.parent.mkdir(exist_ok=True)
    doc.write_text("```bash\n# needs: cluster\nkubectl get pods\n```\n```bash\nmake lab\nmake status\n```\n")
    try:
        run, skipped = doc_commands([doc])
    finally:
        doc.unlink()
    assert [c.text for c in run] == ["make status"]
    assert len(skipped) == 2 and "needs: cluster" in skipped[0] and "test lab" in skipped[1]


@pytest.fixture(scope="module")
def lab() -> Iterator[NativeStack]:
    stack = native_stack(
        max_for=5,
        alertmanager_timings={"group_wait": "1s", "group_interval": "1s"},
        service_env={"ML_DRIFT_INTERVAL_SECONDS": "1", "LOG_LEVEL": "WARNING"},
    )
    with stack:
        # As a learner does after the banner: the commands expect Prometheus to scrape every service already.
        def scraped() -> bool:
            targets = stack.client.targets()
            return bool(targets) and all(t.get("health") == "up" for t in targets)

        wait_until(scraped, timeout=60, what="every Prometheus target up")
        yield stack


def command_env(lab: NativeStack, tmp_path: Path) -> dict[str, str]:
    from lab_common.endpoints import ENDPOINTS

    ports = {e.env: str(getattr(lab.ports, name)) for name, e in ENDPOINTS.items()}
    return {
        **os.environ,
        **ports,
        "PYTHONPATH": str(ROOT),
        "LABCTL_STATE_FILE": str(tmp_path / "labctl.json"),  # never the user's running lab
        "COLUMNS": "200",
    }


def reset_lab(lab: NativeStack) -> None:
    """Undo what a stage's exercises leave behind: faults, the drift window, the receiver's fail window."""
    for service in ("ml_api", "rag_api"):
        lab.client.clear_faults(service)
    lab.client.reset_drift()
    httpx.post(f"{lab.receiver_url}/admin/fail", json={"seconds": 0}, timeout=10)


def prepared(command: str, lab: NativeStack) -> str:
    text = rewrite_ports(command, lab.ports.replacements())
    # `make test` has set the venv up before this test: a `make status` here must not rebuild it (a worktree
    # sharing another checkout's venv would otherwise reinstall it).
    text = re.sub(r"^make (?=\w)", "make -o .venv/.installed ", text)
    if match := SLEEP.match(text.strip()):
        text = f"sleep {min(int(match.group(1)), SLEEP_CAP)}"
    return text


def test_every_documented_command_runs(lab: NativeStack, tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the docs use .venv/bin/...: run through `make test`, which creates .venv")
    run, skipped = doc_commands(DOCS)
    env = command_env(lab, tmp_path)
    failures = []
    t0 = time.monotonic()
    previous_doc = None
    for command in run:
        if command.doc != previous_doc and previous_doc is not None:
            reset_lab(lab)  # each stage starts from a calm lab, as a learner's next session would
        previous_doc = command.doc
        assert time.monotonic() - t0 < BUDGET, f"over the {BUDGET}s budget at {command.doc}: {command.text}"
        text = prepared(command.text, lab)
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", text],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        bad_curl = text.startswith("curl") and CURL_FAILURE.search(r.stdout)
        if r.returncode != 0 or bad_curl:
            failures.append(
                f"{command.doc}: {text}\n  exit {r.returncode}\n  {(r.stdout + r.stderr)[-1500:]}"
            )
    print(f"{len(run)} commands run in {time.monotonic() - t0:.0f}s; skipped {len(skipped)}:")
    print("\n".join(f"  {s}" for s in skipped))
    assert not failures, "\n\n".join(failures)
