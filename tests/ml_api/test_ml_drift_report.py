"""GET /drift/report (issue 11 #14): one report per window state, built in a child process, one at a time."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from lab_common.net import free_port
from tests.support.ml import ml_client, sample_value, scrape, tickets

ROOT = Path(__file__).resolve().parents[2]


def reports(client: TestClient) -> dict[str, float]:
    families = scrape(client)
    outcomes = ("built", "cached", "insufficient_data", "error")
    return {o: sample_value(families, "ml_drift_reports_total", outcome=o) or 0.0 for o in outcomes}


def test_report_is_built_once_per_window_state_off_the_serving_process(ml_model_dir: Path) -> None:
    before_children = {p.pid for p in multiprocessing.active_children()}
    with ml_client(ml_model_dir, drift_min_window=100) as client:
        client.post("/predict/batch", json={"tickets": tickets(60, 41)})
        start = reports(client)
        assert client.get("/drift/report").status_code == 409
        client.post("/predict/batch", json={"tickets": tickets(200, 42)})

        with ThreadPoolExecutor(4) as pool:  # four callers at once, as in the reproduction
            answers = list(pool.map(lambda _: client.get("/drift/report"), range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        assert len({a.text for a in answers}) == 1 and "business_impact" in answers[0].text
        assert client.get("/drift/report").text == answers[0].text  # still the same window: cached
        counted = reports(client)
        assert counted["built"] - start["built"] == 1
        assert counted["cached"] - start["cached"] == 4
        assert counted["insufficient_data"] - start["insufficient_data"] == 1

        # built in a child process, not in a thread of the process that serves /predict
        children = {p.pid for p in multiprocessing.active_children()} - before_children
        assert len(children) == 1

        client.post("/predict", json=tickets(1, 43)[0])  # a new window state: a new report
        assert client.get("/drift/report").status_code == 200
        assert reports(client)["built"] - start["built"] == 2
    # shutdown stops the report process with the service
    assert {p.pid for p in multiprocessing.active_children()} - before_children == set()


def test_the_report_process_creates_no_metric() -> None:
    """Its module imports no ml_api.metrics: in multiprocess mode, a metric created in the child would write
    its own files, and its start-up NaN drift gauges would hide the workers' values."""
    code = "import sys, ml_api.report_worker; assert 'ml_api.metrics' not in sys.modules, 'metrics imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def test_the_report_process_exits_when_the_service_is_killed(ml_model_dir: Path) -> None:
    """A SIGKILLed service never shuts its pool down: the report process must notice and exit by itself."""
    port = free_port()
    env = {**os.environ, "ML_PORT": str(port), "ML_MODEL_DIR": str(ml_model_dir), "ML_AUTO_TRAIN": "false"}
    service = subprocess.Popen([sys.executable, "-m", "ml_api"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not _ready(base):
            assert service.poll() is None and time.monotonic() < deadline, "ml_api did not start"
            time.sleep(0.3)
        httpx.post(f"{base}/predict/batch", json={"tickets": tickets(200, 44)}, timeout=30)
        assert httpx.get(f"{base}/drift/report", timeout=120).status_code == 200
        children = _children(service.pid)
        assert children, "the report was built without a child process"
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        deadline = time.monotonic() + 10
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(children) == set(), "report process outlived the service"
    finally:
        service.kill()
        service.wait(10)
        for pid in _alive(children):
            os.kill(pid, signal.SIGKILL)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
