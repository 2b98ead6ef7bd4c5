"""The one way the lab's tools wait: poll something until it holds, or give up after a deadline (tenacity).

    wait_until(lambda: client.healthy(url), timeout=30, what="ml_api ready")
    value = wait_until(fetch, timeout=60, every=1, what="the alert fires", detail=lab.snapshot)

`wait_until` returns the first truthy value; after `timeout` seconds it raises `WaitTimeout`, whose message
says what was awaited and, when `detail` is given, what the lab looked like at that moment.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time; the message says what and, if known, why."""


def _falsy(value: object) -> bool:
    return not value


def wait_until(
    fn: Callable[[], T],
    *,
    timeout: float,
    every: float = 0.5,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Call `fn` every `every` seconds until it returns something truthy, and return that.

    Exceptions of the types in `retry_on` count as "not yet"; any other exception ends the wait at once.
    `sleep` may be an event's `wait`, so that a shutdown interrupts the wait.
    """
    retry = retry_if_result(_falsy)
    if retry_on:
        retry = retry | retry_if_exception_type(retry_on)
    retrying = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(every), retry=retry, sleep=sleep)
    try:
        return retrying(fn)
    except RetryError as exc:
        last = exc.last_attempt
        why = f" (last: {last.exception()!r})" if last.failed else ""
        extra = f"\n{detail()}" if detail is not None else ""
        raise WaitTimeout(f"{what}: not within {timeout:.0f}s{why}{extra}") from None


def wait_all(
    items: Iterable[str],
    ok: Callable[[str], bool],
    *,
    timeout: float,
    every: float = 0.5,
    check: Callable[[], None] | None = None,
) -> list[str]:
    """Poll `ok(item)` for every item still pending until all hold; return those still pending after
    `timeout` (empty: all held). `check` runs before each round and may raise to stop early (a process
    that exited)."""
    pending = list(items)

    def round_() -> bool:
        if check is not None:
            check()
        pending[:] = [item for item in pending if not ok(item)]
        return not pending

    with contextlib.suppress(WaitTimeout):
        wait_until(round_, timeout=timeout, every=every)
    return pending


class ProcessExited(RuntimeError):
    """The process a wait was for exited before it was ready."""


def wait_http(
    url: str,
    *,
    timeout: float,
    process: subprocess.Popen | None = None,
    ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
    every: float = 0.3,
    what: str | None = None,
) -> None:
    """Wait until GET `url` answers `ok` (200 by default): a server that is starting. `ProcessExited` at once
    if `process` (the server) ends first, `WaitTimeout` after `timeout` seconds."""

    def ready() -> bool:
        if process is not None and process.poll() is not None:
            raise ProcessExited(f"{what or url}: exited with {process.returncode} before it was ready")
        try:
            return ok(httpx.get(url, timeout=2))
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=timeout, every=every, what=f"{what or url} ready")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Ask `process` to stop (SIGTERM) and wait for it; killed when it has not exited after `timeout` s."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
