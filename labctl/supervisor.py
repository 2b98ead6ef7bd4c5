"""One supervisor for the lab's processes: `make lab`, `make demo` and the test stack all run through it.

Each process gets its own process group and a keeper thread that starts it, waits for it, and starts it
again when it dies, after a backoff that doubles while it keeps crashing (0.5 s, 1 s, 2 s ... at most 10 s;
back to 0.5 s once it has run for 30 s). Every exit and restart is reported: a line on the console and in
`<log dir>/supervisor.log`, and in `status()` (pid, restarts, last exit), which `make status` prints.

Its output goes to `<log dir>/<name>.log` and, for `make lab`, to the console too, each line prefixed with the
process's name. The console may go away while the lab runs (`make lab | tee lab.log` and Ctrl-C: tee dies
first); writing to it then stops quietly, and nothing else depends on it, so shutdown still stops every
process.

Why not an existing supervisor (measured, docs/architecture.md): honcho stops every process when one exits;
supervisord and circus are daemons with their own config and control channel (XML-RPC, ZeroMQ ports) that the
tests would have to drive to hold one process down, and neither writes a process's output to its file and to
the console at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from labctl.plan import ProcessSpec


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5  # seconds before the first restart
    cap: float = 10.0  # the longest wait between restarts
    reset_after: float = 30.0  # a process that ran this long counts as healthy: its next restart is quick

    def delay(self, streak: int) -> float:
        """Seconds to wait before restart number `streak` of a crash streak (1, 2, ...)."""
        return min(self.cap, self.first * 2 ** max(0, streak - 1))


class Console:
    """Lines to a stream that may stop being writable (a pipe whose reader died): then it goes quiet."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            if self.stream is None:
                return
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # EPIPE, EIO, or closed: the lab carries on without a console
                self.stream = None


@dataclass
class Child:
    spec: ProcessSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    streak: int = 0
    last_exit: int | None = None
    started_at: float = 0.0
    held: threading.Event = field(default_factory=threading.Event)  # set: stopped on purpose, not restarted
    spawned: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit {code}"


class Supervisor:
    def __init__(
        self,
        specs: Iterable[ProcessSpec],
        log_dir: Path,
        *,
        console: Console | None = None,
        backoff: Backoff = Backoff(),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.children = {s.name: Child(s, log_dir / f"{s.name}.log") for s in specs}
        self.console = console  # None: output to the log files only
        self.backoff = backoff
        self.on_change = on_change
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # spawning vs stopping
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------------------------------- reporting
    def say(self, message: str) -> None:
        """One event: on the console (if any) and in supervisor.log."""
        line = f"{time.strftime('%H:%M:%S')} supervisor   | {message}\n"
        if self.console is not None:
            self.console.write(line)
        with contextlib.suppress(OSError), (self.log_dir / "supervisor.log").open("a", encoding="utf-8") as f:
            f.write(line)

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "pid": c.pid,
                "running": c.running,
                "held": c.held.is_set(),
                "restarts": c.restarts,
                "last_exit": describe_exit(c.last_exit) if c.last_exit is not None else None,
            }
            for name, c in self.children.items()
        }

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):  # reporting must never stop the supervision
                self.on_change()

    # -------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        for child in self.children.values():
            thread = threading.Thread(target=self._keep, args=(child,), name=f"keep-{child.spec.name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _keep(self, child: Child) -> None:
        """Run `child` until the supervisor stops: start it, wait for it, restart it after a backoff."""
        while not self._stopping.is_set():
            while child.held.is_set() and not self._stopping.wait(0.05):
                pass
            try:
                proc = self._spawn(child)
            except OSError as exc:  # not executable, vanished: reported like an exit, retried after backoff
                self.say(f"cannot start {child.spec.name} ({child.spec.cmd[0]}): {exc}")
                code = 127
            else:
                if proc is None:  # stopping
                    return
                code = proc.wait()
            ran = time.monotonic() - child.started_at
            child.last_exit = code
            if self._stopping.is_set():
                return
            if child.held.is_set():
                self.say(f"{child.spec.name} stopped ({describe_exit(code)}); not restarted until asked")
                continue
            child.streak = 1 if ran >= self.backoff.reset_after else child.streak + 1
            child.restarts += 1
            delay = self.backoff.delay(child.streak)
            self.say(
                f"{child.spec.name} exited ({describe_exit(code)}) after {ran:.1f}s; restarting in "
                f"{delay:.1f}s (restart {child.restarts}, log {child.log_path})"
            )
            self._changed()
            self._stopping.wait(delay)

    def _spawn(self, child: Child) -> subprocess.Popen[bytes] | None:
        spec = child.spec
        with self._lock:
            if self._stopping.is_set():
                return None
            child.started_at = time.monotonic()
            log = child.log_path.open("ab")
            try:
                proc = subprocess.Popen(
                    spec.cmd,
                    cwd=spec.cwd,
                    env={**os.environ, **spec.env},
                    stdout=subprocess.PIPE if self.console is not None else log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stop() reaches its children too
                    preexec_fn=_die_with_parent,
                )
            except OSError:
                log.close()
                raise
            if proc.stdout is not None:
                threading.Thread(target=self._pump, args=(spec.name, proc.stdout, log), daemon=True).start()
            else:
                log.close()
            child.proc = proc
        with child.spawned:
            child.spawned.notify_all()
        self.say(f"{spec.name} started (pid {proc.pid})")
        self._changed()
        return proc

    def _pump(self, name: str, stream: IO[bytes], log: IO[bytes]) -> None:
        """A child's output, line by line, to its log file and to the console (prefixed with its name)."""
        prefix = f"{name:<12} | "
        with log, stream:
            for raw in iter(stream.readline, b""):
                with contextlib.suppress(OSError):
                    log.write(raw)
                    log.flush()
                if self.console is not None:
                    text = raw.decode("utf-8", errors="replace").rstrip("\n")
                    self.console.write(f"{time.strftime('%H:%M:%S')} {prefix}{text}\n")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process: SIGTERM to each group, SIGKILL to what is left after `timeout` seconds."""
        with self._lock:
            self._stopping.set()
        procs = [c.proc for c in self.children.values() if c.proc is not None]
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # stragglers and any children left in the group
            proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # ---------------------------------------------------------------------------------- one process
    def child(self, name: str) -> Child:
        try:
            return self.children[name]
        except KeyError:
            raise KeyError(f"no process {name!r} in this lab: {sorted(self.children)}") from None

    def send_signal(self, name: str, sig: signal.Signals) -> None:
        """`sig` to `name`'s whole process group (SIGSTOP/SIGCONT: hung, then running again)."""
        proc = self.child(name).proc
        if proc is not None:
            _signal_group(proc, sig)

    def hold(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout: float = 10.0) -> int | None:
        """Stop `name` on purpose (not restarted until `release`): `sig` to its group, wait until it is
        gone, return its exit status."""
        child = self.child(name)
        child.held.set()
        if child.proc is None:
            return None
        _signal_group(child.proc, sig)
        return child.proc.wait(timeout)

    def release(self, name: str, timeout: float = 10.0) -> int:
        """Let a held process start again; returns its new pid once it is spawned."""
        child = self.child(name)
        old = child.proc
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{name} is still running (pid {old.pid}): hold it first")
        with child.spawned:
            child.held.clear()
            if not child.spawned.wait_for(lambda: child.proc is not old, timeout):
                raise TimeoutError(f"{name} was not started again within {timeout:.0f}s")
        assert child.proc is not None
        return child.proc.pid


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the thread that started it ends, even by SIGKILL of
    the whole supervisor, so a killed lab or test run leaves no process behind. The keeper thread that
    starts a process lives as long as the process."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
