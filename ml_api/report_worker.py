"""What the drift-report child process runs (see ml_api/report.py).

Kept apart from ml_api.metrics on purpose: the child imports only this module and ml_api.drift, so it creates
no metric. (In multiprocess mode a metric created there would write its own files, and its start-up NaN drift
gauges, "most recent" across processes, would hide the workers' values.)
"""

from __future__ import annotations

import os
import threading
import time

import pandas as pd

from ml_api.drift import html_report

_reference: pd.DataFrame | None = None  # this process's copy, set once by the pool's initializer
PARENT_CHECK_SECONDS = 1.0


def start(reference: pd.DataFrame, parent_pid: int) -> None:
    """The pool's initializer: keep the reference, and exit when the service process is gone (a SIGKILLed
    parent never shuts its pool down, and a supervisor would start a new service next to the orphan)."""
    global _reference
    _reference = reference
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def render(window: pd.DataFrame) -> str:
    if _reference is None:
        raise RuntimeError("the report process has no reference")
    return html_report(_reference, window)
