"""Starting labs and labctl the way the tests need them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labctl.binaries import MissingTools, monitoring_binaries
from labctl.config import ROOT
from labctl.stack import NativeStack


def native_stack(**options: Any) -> NativeStack:
    """A NativeStack (not started), or a test failure naming what to install."""
    try:
        monitoring_binaries()
    except MissingTools as exc:
        pytest.fail(f"these tests need Prometheus and Alertmanager: {exc}", pytrace=False)
    return NativeStack(**options)


# Alertmanager groups and notifies within a second: a test waits for one alert's notification, not a batch.
FAST_ALERTMANAGER = {"group_wait": "1s", "group_interval": "1s"}


def alerting_stack(max_for: float) -> NativeStack:
    """A stack for tests that wait for alerts: each rule's `for` capped at `max_for` seconds, Alertmanager
    notifying at once, ml_api re-testing drift every second, services logging warnings only."""
    return native_stack(
        max_for=max_for,
        alertmanager_timings=FAST_ALERTMANAGER,
        service_env={"ML_DRIFT_INTERVAL_SECONDS": "1", "LOG_LEVEL": "WARNING"},
    )


def run_labctl(
    *args: str, state_file: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m labctl ARGS` with its state file in a test's directory (never the user's lab's)."""
    return subprocess.run(
        [sys.executable, "-m", "labctl", *args],
        cwd=ROOT,
        env={**os.environ, "LABCTL_STATE_FILE": str(state_file), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
