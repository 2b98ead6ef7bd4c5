"""The one way the lab's tools wait: poll something until it holds, or give up after a deadline (tenacity).

    wait_until(lambda: client.healthy(url), timeout=30, what="ml_api ready")
    value = wait_until(fetch, timeout=60, every=1, what="the alert fires", detail=lab.snapshot)

`wait_until` returns the first truthy value; after `timeout` seconds it raises `WaitTimeout`, whose message
says what was awaited and, when `detail` is given, what the lab looked like at that moment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

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
