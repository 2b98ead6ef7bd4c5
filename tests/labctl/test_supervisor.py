"""labctl.supervisor on small real processes: restarts with backoff, reports, logs, holds, and a console
that goes away (issue 11 #18) without stopping anything."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.plan import ProcessSpec
from labctl.supervisor import Backoff, Console, Supervisor
from labctl.wait import wait_until
from tests.support.procs import group_members

pytestmark = pytest.mark.timeout(120)

# Prints a line a tenth of a second (so there is always output to pass on), forever.
CHATTY = (
    "import itertools, time\nfor i in itertools.count():\n    print('line', i, flush=True); time.sleep(0.1)"
)


def spec(name: str, code: str, tmp_path: Path) -> ProcessSpec:
    return ProcessSpec(name, [sys.executable, "-c", code], {}, tmp_path, "")


@pytest.fixture
def run(tmp_path: Path) -> Iterator:
    started: list[Supervisor] = []

    def start(*specs: ProcessSpec, **kwargs) -> Supervisor:
        sup = Supervisor(specs, tmp_path / "logs", **kwargs)
        sup.start()
        started.append(sup)
        wait_until(lambda: all(c.running for c in sup.children.values()), timeout=10, what="all running")
        return sup

    yield start
    for sup in started:
        sup.stop(timeout=5)


def new_pid(sup: Supervisor, name: str, old: int | None) -> int | None:
    child = sup.children[name]
    return child.pid if child.running and child.pid != old else None


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "logs" / "supervisor.log"
    return path.read_text().splitlines() if path.exists() else []


def test_a_killed_process_is_restarted_with_backoff_and_reported(run, tmp_path: Path) -> None:
    sup = run(spec("a", CHATTY, tmp_path), spec("b", CHATTY, tmp_path), backoff=Backoff(first=0.2, cap=1))
    b_pid = sup.children["b"].pid
    for _ in range(2):
        old = sup.children["a"].pid
        os.kill(old, signal.SIGKILL)
        wait_until(lambda old=old: new_pid(sup, "a", old), timeout=10, what="a restarted")
    status = sup.status()
    assert status["a"]["restarts"] == 2 and status["a"]["last_exit"] == "signal SIGKILL"
    assert status["b"] == {**status["b"], "pid": b_pid, "restarts": 0, "running": True}
    lines = [ln for ln in events(tmp_path) if "a exited (signal SIGKILL)" in ln]
    # A crash streak: the second restart waits twice as long as the first.
    assert ["restarting in 0.2s" in lines[0], "restarting in 0.4s" in lines[1]] == [True, True], lines


def test_a_crash_loop_backs_off_up_to_the_cap(run, tmp_path: Path) -> None:
    specs = [spec("ok", CHATTY, tmp_path), spec("crash", "raise SystemExit(3)", tmp_path)]
    sup = Supervisor(specs, tmp_path / "logs", backoff=Backoff(first=0.1, cap=0.4))
    sup.start()
    try:
        wait_until(lambda: sup.children["crash"].restarts >= 5, timeout=20, what="five restarts")
    finally:
        sup.stop(timeout=5)
    delays = [ln.split("restarting in ")[1].split("s")[0] for ln in events(tmp_path) if "crash exited" in ln]
    assert delays[:5] == ["0.1", "0.2", "0.4", "0.4", "0.4"], delays
    assert all("(exit 3)" in ln for ln in events(tmp_path) if "crash exited" in ln)
    assert sup.children["ok"].restarts == 0


def test_output_goes_to_the_log_file_and_the_console(run, tmp_path: Path) -> None:
    out = io.StringIO()
    run(spec("talker", CHATTY, tmp_path), console=Console(out))
    log = tmp_path / "logs" / "talker.log"
    wait_until(lambda: log.exists() and "line 3" in log.read_text(), timeout=10, what="log file")
    wait_until(lambda: "talker       | line 3" in out.getvalue(), timeout=10, what="console")


def test_a_console_that_goes_away_stops_nothing(run, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    sup = run(spec("talker", CHATTY, tmp_path), spec("other", CHATTY, tmp_path), console=Console(stream))
    os.close(read_end)  # the reader dies (tee, on Ctrl-C): every later write raises BrokenPipeError
    log = tmp_path / "logs" / "talker.log"
    size = log.stat().st_size
    wait_until(lambda: log.stat().st_size > size + 100, timeout=10, what="log keeps growing")
    assert sup.console is not None and sup.console.stream is None, "the console should have gone quiet"
    old = sup.children["talker"].pid
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: new_pid(sup, "talker", old), timeout=10, what="restart without a console")
    pids = [c.pid for c in sup.children.values()]
    sup.stop(timeout=5)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not group_members([p for p in pids if p]), timeout=5)
    assert not group_members([p for p in pids if p]), "children left running after stop()"
    with contextlib.suppress(OSError):
        stream.close()


def test_hold_keeps_a_process_down_until_released(run, tmp_path: Path) -> None:
    sup = run(spec("a", CHATTY, tmp_path), backoff=Backoff(first=0.1))
    assert sup.hold("a") == -signal.SIGKILL
    with pytest.raises(TimeoutError):
        wait_until(lambda: sup.children["a"].running, timeout=1.5, what="stays down")
    pid = sup.release("a")
    assert sup.children["a"].pid == pid and sup.children["a"].running
    assert sup.children["a"].restarts == 0, "a deliberate stop is not a crash"


def test_stop_ends_every_process_group(run, tmp_path: Path) -> None:
    # The child starts a grandchild in its group; stop() must end both.
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('spawned', flush=True)\ntime.sleep(600)"
    )
    sup = run(spec("parent", code, tmp_path))
    log = tmp_path / "logs" / "parent.log"
    wait_until(lambda: "spawned" in log.read_text(), timeout=10, what="grandchild started")
    pgid = sup.children["parent"].pid
    sup.stop(timeout=5)
    # Signalled processes take a moment to die: wait for it, then say who survived.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not group_members([pgid]), timeout=5)
    assert not group_members([pgid]), "a process of the group survived stop()"
