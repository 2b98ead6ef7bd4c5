"""Server mode, with a real `chroma run` server: down -> 503 and /ready false; back -> rag_api recovers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from lab_common.net import free_port
from labctl.wait import stop_process, wait_http
from rag_api.app import create_app
from tests.support.rag import offline_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMA = Path(sys.executable).with_name("chroma")
pytestmark = pytest.mark.skipif(not CHROMA.exists(), reason="the chroma CLI is not installed")


class ChromaServer:
    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(
            f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=60, every=0.2, what="chroma server"
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server", free_port())
    yield server
    server.stop()


def unavailable() -> float:
    return REGISTRY.get_sample_value("rag_chat_requests_total", {"status": "unavailable"}) or 0.0


def test_chroma_down_gives_503_and_recovery_is_automatic(tmp_path: Path, chroma: ChromaServer) -> None:
    knowledge = tmp_path / "kb"
    knowledge.mkdir()
    for name in ("reset-password", "refunds"):
        shutil.copy(ROOT / "rag_api" / "knowledge" / f"{name}.md", knowledge)
    settings = offline_settings(
        tmp_path / "unused", chroma_host="127.0.0.1", chroma_port=chroma.port, knowledge_dir=knowledge
    )
    question = {"query": "How do I reset my password?", "evaluate": "off"}
    with TestClient(create_app(settings)) as client:  # starts although Chroma is down
        before = unavailable()
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["store"] == "unavailable"
        response = client.post("/chat", json=question)
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]
        assert client.get("/knowledge/stats").status_code == 503
        assert unavailable() == before + 1

        chroma.start()  # the store comes back: the next request reconnects and loads the knowledge
        response = client.post("/chat", json=question)
        assert response.status_code == 200, response.text
        assert response.json()["sources"][0]["article_id"] == "reset-password"
        assert client.get("/ready").status_code == 200

        chroma.stop()  # it goes away again mid-life...
        assert client.post("/chat", json=question).status_code == 503
        assert client.get("/ready").status_code == 503
        chroma.start()  # ...and comes back with its data
        assert client.post("/chat", json=question).status_code == 200
        assert client.get("/ready").json()["chunks"] > 0
