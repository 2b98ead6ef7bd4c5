"""A knowledge reload that crashes, or meets a missing or bad corpus, never loses the collection (#11, #12).

Real Chroma (persistent, in tmp dirs), the real embedder, and a real `kill -9` of a reloading process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_api.app import create_app
from rag_api.settings import DEFAULT_KNOWLEDGE_DIR
from rag_api.store import KnowledgeStore, load_knowledge
from tests.support.rag import copy_index, offline_settings

ROOT = Path(__file__).resolve().parents[2]
QUESTION = {"query": "How do I reset my password?", "evaluate": "off"}  # pragma: allowlist secret

# Runs one reload in a child process that SIGKILLs itself on its first write of the given kind.
CRASHING_RELOAD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from rag_api.store import KnowledgeStore
    from tests.support.rag import offline_settings

    store = KnowledgeStore(offline_settings(Path(sys.argv[1]), knowledge_dir=Path(sys.argv[2])))
    setattr(type(store.collection()), sys.argv[3], lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    store.reload()
    """
)


def stored_ids(store: KnowledgeStore) -> set[str]:
    return {c.id for c in store.corpus()}


def wanted_ids(knowledge: Path) -> set[str]:
    return {r.id for r in load_knowledge(knowledge, 800, 150)[1]}


@pytest.fixture
def knowledge(tmp_path: Path) -> Path:
    """A private copy of the shipped knowledge base."""
    return Path(shutil.copytree(DEFAULT_KNOWLEDGE_DIR, tmp_path / "knowledge"))


@pytest.mark.parametrize("crash_at", ["upsert", "delete"])
def test_kill_9_during_reload_loses_no_chunk_and_the_next_start_repairs(
    tmp_path: Path, knowledge: Path, crash_at: str
) -> None:
    chroma = copy_index(tmp_path / "chroma")
    settings = offline_settings(chroma, knowledge_dir=knowledge)
    before = stored_ids(KnowledgeStore(settings))
    refunds = knowledge / "refunds.md"
    refunds.write_text(refunds.read_text().replace("30 days", "45 days"))
    (knowledge / "webhooks.md").unlink()
    wanted = wanted_ids(knowledge)
    assert wanted - before and before - wanted  # the reload has chunks to add and chunks to delete

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_RELOAD, str(chroma), str(knowledge), crash_at],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr[-2000:]

    after_crash = stored_ids(KnowledgeStore(settings))
    assert before <= after_crash  # nothing deleted before the new chunks were written
    if crash_at == "delete":
        assert wanted <= after_crash

    restarted = KnowledgeStore(settings)
    assert restarted.ensure_loaded() is True  # on main: any non-zero count was trusted
    assert stored_ids(restarted) == wanted
    assert restarted.ensure_loaded() is False


@pytest.fixture
def client(tmp_path: Path, knowledge: Path) -> Iterator[TestClient]:
    settings = offline_settings(copy_index(tmp_path / "chroma"), knowledge_dir=knowledge)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def chunks(client: TestClient) -> int:
    return client.get("/knowledge/stats").json()["chunks"]


def test_a_missing_or_empty_knowledge_directory_is_refused_and_the_collection_kept(
    client: TestClient, knowledge: Path
) -> None:
    count = chunks(client)
    moved = knowledge.rename(knowledge.with_name("moved-away"))
    response = client.post("/knowledge/reload")
    assert response.status_code == 409, response.text
    assert "does not exist" in response.json()["detail"] and str(moved.parent) not in response.text
    assert chunks(client) == count
    assert client.post("/chat", json=QUESTION).status_code == 200

    knowledge.mkdir()
    (knowledge / "README.md").write_text("# Only the description of the corpus\n")
    response = client.post("/knowledge/reload")
    assert response.status_code == 409 and "no article" in response.json()["detail"]
    assert chunks(client) == count


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"---\ntitle: Bad bytes\n---\n# Bad bytes\n\nCaf\xe9 au lait.\n", "UTF-8"),
        (b"---\ntitle: [unclosed\n---\n# Broken\n\nText.\n", "YAML"),
        (b"---\n- a list\n- not a mapping\n---\n# Broken\n\nText.\n", "mapping"),
        (b"---\ntitle: Never closed\n\n# Broken\n\nText.\n", "closing"),
    ],
)
def test_a_bad_article_is_a_422_naming_the_file_and_the_collection_kept(
    client: TestClient, knowledge: Path, content: bytes, reason: str
) -> None:
    count = chunks(client)
    (knowledge / "broken-article.md").write_bytes(content)
    response = client.post("/knowledge/reload")
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["field"] == "broken-article.md" and reason in error["message"], error
    assert chunks(client) == count
    assert client.post("/chat", json=QUESTION).status_code == 200


def test_stats_show_the_knowledge_directory_without_the_hosts_layout(tmp_path: Path, knowledge: Path) -> None:
    shipped = offline_settings(copy_index(tmp_path / "shipped"))
    with TestClient(create_app(shipped)) as client:
        assert client.get("/knowledge/stats").json()["knowledge_dir"] == "rag_api/knowledge"
    elsewhere = offline_settings(copy_index(tmp_path / "elsewhere"), knowledge_dir=knowledge)
    with TestClient(create_app(elsewhere)) as client:
        assert client.get("/knowledge/stats").json()["knowledge_dir"] == "knowledge"


def test_start_without_a_corpus_serves_a_stored_collection_or_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    kept = offline_settings(copy_index(tmp_path / "kept"), knowledge_dir=missing)
    with TestClient(create_app(kept)) as client:
        assert client.get("/ready").status_code == 200
        assert client.post("/chat", json=QUESTION).status_code == 200

    empty = offline_settings(tmp_path / "empty", knowledge_dir=missing)
    with TestClient(create_app(empty)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "empty" in ready.json()["error"]
        response = client.post("/chat", json=QUESTION)
        assert response.status_code == 503 and "does not exist" in response.json()["detail"]
