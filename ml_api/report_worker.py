"""What the drift-report child process runs (see ml_api/report.py).

Kept apart from ml_api.metrics on purpose: the child imports only this module and ml_api.drift, so it creates
no metric. (In multiprocess mode a metric created there would write its own files, and its start-up NaN drift
gauges, "most recent" across processes, would hide the workers' values.)
"""

from __future__ import annotations

import pandas as pd

from ml_api.drift import html_report

_reference: pd.DataFrame | None = None  # this process's copy, set once by the pool's initializer


def set_reference(reference: pd.DataFrame) -> None:
    global _reference
    _reference = reference


def render(window: pd.DataFrame) -> str:
    if _reference is None:
        raise RuntimeError("the report process has no reference")
    return html_report(_reference, window)
