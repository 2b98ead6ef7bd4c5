"""Schemathesis against each service's OpenAPI schema: no 5xx, and every response matches its schema.

The services run as users run them (`python -m ml_api`, `python -m rag_api`) with the default, non-lab
profile, an admin token and fault injection on: every request carries the token, so the admin and fault
endpoints are fuzzed too. Faults last at most MAX_FAULT_SECONDS=1 (and so do the sleeps they inject), so
a fault the fuzzer switches on cannot stall the rest of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from lab_common.net import free_port
from labctl.wait import ProcessExited, WaitTimeout, wait_http

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 50  # ~10 operations per service: about 500 generated cases each
ADMIN_TOKEN = "fuzz-admin-token"
ADMIN = {
    "LAB_PROFILE": "false",
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "FAULTS_ENABLED": "true",
    "MAX_FAULT_SECONDS": "1",
}


@contextmanager
def served(module: str, env: dict[str, str], timeout: float = 240) -> Iterator[str]:
    """`python -m module` with `env`, ready; yields its base URL and stops it on leaving."""
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env})
    port = env["ML_PORT"] if module == "ml_api" else env["RAG_PORT"]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/ready", timeout=timeout, process=process, every=0.5, what=f"python -m {module}")
    except (WaitTimeout, ProcessExited) as exc:
        process.terminate()
        pytest.fail(str(exc))
    try:
        yield base
    finally:
        process.terminate()
        process.wait(20)


def assert_passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def schemathesis(base: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
            "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "20261125",
            "--request-timeout", "30", "--report-dir", str(tmp_path),
            "--header", f"X-Admin-Token: {ADMIN_TOKEN}", *extra,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip


@pytest.mark.timeout(1200)
def test_ml_api_schema_fuzz(tmp_path: Path) -> None:
    env = {"ML_PORT": str(free_port()), "ML_MODEL_DIR": str(tmp_path / "models"), **ADMIN}
    with served("ml_api", env) as base:
        # The HTML drift report is for humans (and costs seconds per call); it has no JSON schema to check.
        result = schemathesis(base, tmp_path, "--exclude-path", "/drift/report")
    assert_passed(result)


@pytest.mark.timeout(1200)
def test_rag_api_schema_fuzz(tmp_path: Path) -> None:
    env = {
        "RAG_PORT": str(free_port()),
        "RAG_CHROMA_PATH": str(tmp_path / "chroma"),
        "RAG_RECORDS_PATH": str(tmp_path / "records.sqlite"),
        **ADMIN,
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    with served("rag_api", env) as base:
        # The first scored answer starts the evaluator (tens of seconds on a loaded machine): not the fuzzer's
        # 30 s request budget's business.
        warm = httpx.post(f"{base}/chat", json={"query": "warm up", "evaluate": "sync"}, timeout=180)
        assert warm.status_code == 200, warm.text
        # A reload re-embeds the whole corpus (seconds of CPU) and takes no input but the token.
        result = schemathesis(base, tmp_path, "--exclude-path", "/knowledge/reload")
    assert_passed(result)


@pytest.mark.timeout(600)
def test_receiver_schema_fuzz(tmp_path: Path) -> None:
    """The receiver's HTTP API as deployed outside the lab profile, with the admin token: clearing the inbox
    is fuzzed too. The fail knob is left out, since answering 500 is what it is for."""
    from tests.support.receiver import start_receiver, stop

    receiver = start_receiver(tmp_path, LAB_PROFILE="false", ADMIN_TOKEN=ADMIN_TOKEN, RECEIVER_ECHO="false")
    try:
        result = schemathesis(receiver.url, tmp_path, "--exclude-path", "/admin/fail")  # sends the token
        with receiver.client() as client:
            assert client.get("/notifications").status_code == 200
            assert client.get("/inbox").status_code == 200
    finally:
        stop(receiver)
    assert_passed(result)
