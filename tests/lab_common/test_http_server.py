"""The HTTP server every lab process runs, as a real process on a real socket (issue 11 findings 2, 13).

`tests.support.tiny_service` is served exactly as ml_api and rag_api are (`lab_common.serve.run_service`);
the receiver runs as `python -m receiver`. Request heads are bounded in size (431) and in time (408), and
SIGTERM does not wait for an injected sleep.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lab_common.net import free_port
from labctl.wait import ProcessExited, WaitTimeout, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[2]
MAX_HEADER_BYTES = 16_384
HEADER_TIMEOUT_SECONDS = 1.5
LIMITS = {"MAX_HEADER_BYTES": str(MAX_HEADER_BYTES), "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS)}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start(args: list[str], env: dict[str, str], port: int, ready_path: str = "/health") -> Server:
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **LIMITS, **env})
    try:
        wait_http(
            f"http://127.0.0.1:{port}{ready_path}", timeout=60, process=process, every=0.1, what=str(args)
        )
    except (WaitTimeout, ProcessExited) as exc:
        process.kill()
        pytest.fail(str(exc))
    return Server(process, port)


def stop(server: Server) -> None:
    stop_process(server.process)


@pytest.fixture(scope="module")
def tiny() -> Iterator[Server]:
    port = free_port()
    server = start(
        ["-m", "tests.support.tiny_service"], {"TINY_PORT": str(port), "LAB_PROFILE": "true"}, port
    )
    yield server
    stop(server)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    env = {
        "RECEIVER_HTTP_PORT": str(port),
        "RECEIVER_SMTP_PORT": str(free_port()),
        "RECEIVER_LOG": str(tmp_path_factory.mktemp("receiver") / "notifications.jsonl"),
        "RECEIVER_ECHO": "false",
    }
    server = start(["-m", "receiver"], env, port, ready_path="/health")
    yield server
    stop(server)


def exchange(
    port: int, *chunks: bytes, pause: float = 0.0, read_timeout: float = 10.0
) -> tuple[bytes, float]:
    """Send raw bytes (stopping early if the server closes), then read until it closes: (answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered (and closes): sending on would only reset the connection
                sock.sendall(chunk)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before we were done: read what it said
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
        except TimeoutError:
            answer += b"<still open>"
    return answer, time.monotonic() - started


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.mark.parametrize("name", ["tiny", "receiver"])
def test_a_head_over_the_limit_is_answered_431(request: pytest.FixtureRequest, name: str) -> None:
    server: Server = request.getfixturevalue(name)
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\n\r\n"
    answer, _ = exchange(server.port, big)
    assert status(answer) == 431, answer[:200]
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(200)
    )
    answer, _ = exchange(server.port, many + b"\r\n")
    assert status(answer) == 431, answer[:200]
    # Just under the limit is fine.
    ok = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * (MAX_HEADER_BYTES // 2)
        + b"\r\nConnection: close\r\n\r\n"
    )
    assert status(exchange(server.port, ok)[0]) == 200


@pytest.mark.parametrize("name", ["tiny", "receiver"])
def test_an_unfinished_huge_header_is_cut_off_not_buffered(request: pytest.FixtureRequest, name: str) -> None:
    server: Server = request.getfixturevalue(name)
    chunks = [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "] + [b"a" * 65536] * 160  # 10 MB, never finished
    answer, _ = exchange(server.port, *chunks)
    assert status(answer) == 431, answer[:200]


@pytest.mark.parametrize("name", ["tiny", "receiver"])
def test_a_slow_or_silent_client_is_closed_after_the_header_timeout(
    request: pytest.FixtureRequest, name: str
) -> None:
    server: Server = request.getfixturevalue(name)
    answer, seconds = exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ends the head
    assert status(answer) == 408 and seconds < HEADER_TIMEOUT_SECONDS + 2, (answer[:200], seconds)
    answer, seconds = exchange(server.port)  # connects and says nothing
    assert answer == b"" and seconds < HEADER_TIMEOUT_SECONDS + 2, (answer[:200], seconds)
    # One byte at a time, each within the timeout, still has to finish the head in time.
    trickle = [bytes([b]) for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 40]
    answer, seconds = exchange(server.port, *trickle, pause=0.1)
    assert status(answer) == 408 and seconds < HEADER_TIMEOUT_SECONDS + 3, (answer[:200], seconds)


def test_keep_alive_requests_are_unaffected(tiny: Server) -> None:
    with httpx.Client(base_url=tiny.url, timeout=5) as client:
        for _ in range(3):
            assert client.post("/work", json={"size": 3}).json() == {"done": 3}
            time.sleep(HEADER_TIMEOUT_SECONDS / 2)  # idle between requests: the keep-alive timeout applies
        assert client.get("/health", headers={"X-Fine": "b" * 4000}).status_code == 200


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_does_not_wait_for_an_injected_sleep(workers: int, tmp_path: Path) -> None:
    port = free_port()
    env = {"TINY_PORT": str(port), "LAB_PROFILE": "true", "TINY_WORKERS": str(workers)}
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "multiproc")
    server = start(["-m", "tests.support.tiny_service"], env, port)
    try:
        # Each worker has its own faults; new connections each time spread over the workers.
        for _ in range(12 if workers > 1 else 1):
            on = httpx.post(
                f"{server.url}/admin/faults/latency",
                json={"duration_seconds": 120, "params": {"delay_ms": 60_000}},
                timeout=5,
            )
            assert on.status_code == 200, on.text
        answers: list[int] = []

        def slow_call() -> None:
            try:
                answers.append(httpx.post(f"{server.url}/work", json={}, timeout=70).status_code)
            except httpx.HTTPError:
                answers.append(0)

        callers = [threading.Thread(target=slow_call) for _ in range(3)]
        for caller in callers:
            caller.start()
        time.sleep(1.0)  # the calls are asleep in the fault
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=70)
        seconds = time.monotonic() - started
        for caller in callers:
            caller.join(timeout=10)
        assert seconds < 5, f"SIGTERM took {seconds:.1f} s: it waited for the injected sleeps"
        assert code in (0, -signal.SIGTERM), code  # uvicorn re-raises the signal once it has shut down
        assert answers == [200, 200, 200], answers  # the sleeping calls were answered, not dropped
    finally:
        stop(server)
