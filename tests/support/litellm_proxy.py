"""LiteLLM's proxy: a second OpenAI-compatible server, one nobody here wrote, for the OpenAI-path tests.

Our stand-in (tests/support/openai_server.py) speaks the protocol as we read it; LiteLLM checks the same
client code against someone else's reading: its usage fields, its error bodies and status codes, its auth.

    proxy = LiteLLMProxy(tmp_dir).start()   # ~10-20 s: one per test session (tests/conftest.py)
    ... OPENAI_BASE_URL=proxy.base_url, OPENAI_API_KEY=proxy.api_key ...
    proxy.stop()

Three models, all LiteLLM mocks (`mock_response`: no upstream is called, the proxy answers itself):
GENERATION_MODEL answers a fixed sentence, JUDGE_MODEL a TruLens judge verdict (score 3 of 3),
RATE_LIMITED_MODEL always answers HTTP 429. A mock reports the fixed usage MOCK_USAGE on every answer.
LiteLLM's own retries and cooldowns are off, so every attempt seen is one the client made.

Offline: LITELLM_LOCAL_MODEL_COST_MAP=True makes it read its packaged price map instead of fetching it at
start (measured with a socket audit hook: no other lookup leaves the machine at start or per request).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab_common.net import free_port
from lab_common.state import ROOT

GENERATION_MODEL = "gpt-4o-mini"
JUDGE_MODEL = "judge-model"
RATE_LIMITED_MODEL = "rate-limited"
GENERATION_REPLY = "You can reset your password from the sign-in page: choose Forgot password."
# TruLens's judge schema ({criteria, supporting_evidence, score}), full marks on its 0-3 scale.
JUDGE_REPLY = json.dumps({"criteria": "supported", "supporting_evidence": "the context says so", "score": 3})
MOCK_USAGE = (10, 20)  # (prompt_tokens, completion_tokens) LiteLLM reports for a mock answer
INSTALL_SCRIPT = ROOT / "scripts" / "install_litellm.sh"
START_TIMEOUT_SECONDS = 180.0  # measured 11-18 s on a busy 2-core machine; CI may be busier
_CHAT_LINE = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})')


def proxy_executable() -> Path:
    """Where scripts/install_litellm.sh puts the proxy (the script holds the venv's place and the pin)."""
    out = subprocess.run(["bash", str(INSTALL_SCRIPT), "--where"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def needs_litellm() -> Path:
    """The proxy's executable; a missing one fails the test under CI (make test installs it), else skips."""
    executable = proxy_executable()
    if not os.access(executable, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"LiteLLM's proxy is required in CI: {INSTALL_SCRIPT} installs it", pytrace=False)
        pytest.skip(f"LiteLLM's proxy is not installed (bash {INSTALL_SCRIPT.relative_to(ROOT)})")
    return executable


def _model(name: str, reply: str) -> str:
    return (
        f"  - model_name: {name}\n"
        f"    litellm_params:\n"
        f"      model: openai/{name}\n"
        f"      api_key: sk-unused\n"  # required by the openai provider, never sent: the mock answers
        f"      mock_response: {json.dumps(reply)}\n"
    )


def config_text() -> str:
    models = (
        _model(GENERATION_MODEL, GENERATION_REPLY)
        + _model(JUDGE_MODEL, JUDGE_REPLY)
        # This exact text makes LiteLLM raise its RateLimitError, which the proxy serves as a 429.
        + _model(RATE_LIMITED_MODEL, "litellm.RateLimitError")
    )
    # No retries or cooldowns inside LiteLLM: the client's retries (rag_api's max_retries) are under test.
    settings = (
        "litellm_settings:\n  num_retries: 0\nrouter_settings:\n  num_retries: 0\n  disable_cooldowns: true\n"
    )
    return f"model_list:\n{models}{settings}"


class LiteLLMProxy:
    """`litellm --config` on a free port of 127.0.0.1, its config and log in `directory`."""

    # LITELLM_MASTER_KEY: the proxy requires a bearer key, and this made-up one is it.
    api_key = "sk-lab-master"  # pragma: allowlist secret

    def __init__(self, executable: Path, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "litellm.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LiteLLMProxy:
        config = self.directory / "litellm.yaml"
        config.write_text(config_text(), encoding="utf-8")
        env = {
            **os.environ,
            "LITELLM_MASTER_KEY": self.api_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it downloads its price map at start
            "PYTHONUNBUFFERED": "1",  # the access log is read to count attempts
        }
        command = [
            str(self.executable),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        url = f"http://127.0.0.1:{self.port}/health/liveliness"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"LiteLLM exited ({self._process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"LiteLLM did not start within {START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._process = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def chat_statuses(self) -> list[int]:
        """The HTTP status of every chat-completions request served so far, in order (its access log)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [int(status) for status in _CHAT_LINE.findall(text)]
