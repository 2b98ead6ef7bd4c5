"""Retrieval quality and knowledge loading on real Chroma (tmp dirs) with the real embedder."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from rag_api.embeddings import get_embedder
from rag_api.store import KnowledgeStore, chunk_article, load_knowledge, parse_article
from tests.support.rag import copy_index, offline_settings

ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE = ROOT / "rag_api" / "knowledge"
QUESTIONS = Path(__file__).parents[1] / "data" / "retrieval_questions.jsonl"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeStore:
    root = tmp_path_factory.mktemp("retrieval")
    return KnowledgeStore(offline_settings(copy_index(root / "chroma")))


def test_recall_at_3(store: KnowledgeStore) -> None:
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    assert len(rows) >= 30
    vectors = get_embedder().embed([row["question"] for row in rows])
    misses = []
    for row, vector in zip(rows, vectors, strict=True):
        found = [chunk.article_id for chunk in store.search(vector, 3)]
        if row["article"] not in found:
            misses.append((row["question"], row["article"], found))
    recall = 1 - len(misses) / len(rows)
    print(f"\nrecall@3 = {recall:.3f} over {len(rows)} questions; misses: {misses}")
    assert recall >= 0.9


def test_every_article_is_indexed_with_its_metadata(store: KnowledgeStore) -> None:
    articles, records = load_knowledge(KNOWLEDGE, store.settings.chunk_size, store.settings.chunk_overlap)
    corpus = store.corpus()
    assert {c.article_id for c in corpus} == {a.id for a in articles}
    assert store.count() == len({r.id for r in records})
    titles = {a.id: a.title for a in articles}
    assert all(c.title == titles[c.article_id] and c.category for c in corpus)


def test_chunks_respect_size_and_overlap_on_sentence_boundaries() -> None:
    article = parse_article(KNOWLEDGE / "reset-password.md")
    assert article.title == "How to reset your password" and article.category == "accounts"
    chunks = chunk_article(article, size=300, overlap=120)
    assert len(chunks) >= 3
    for chunk in chunks:
        body = [line for line in chunk.text.splitlines() if not line.startswith("#")]
        assert body, chunk.text
        # whole sentences or list items only: every line ends like a sentence or is a complete list item
        assert all(line[-1] in ".!?:)" or line[0] in "-0123456789" for line in body), chunk.text
        assert len(chunk.text) <= 300 + max(len(line) for line in body) + 50
    overlaps = sum(
        1
        for previous, current in itertools.pairwise(chunks)
        if set(previous.text.splitlines()) & set(current.text.splitlines())
    )
    assert overlaps >= 1  # consecutive chunks share a sentence
    assert [c.index for c in chunks] == list(range(len(chunks)))


def make_knowledge(directory: Path, names: list[str]) -> Path:
    directory.mkdir(parents=True)
    for name in names:
        shutil.copy(KNOWLEDGE / f"{name}.md", directory / f"{name}.md")
    return directory


def test_reload_is_idempotent_and_replaces_changed_articles(tmp_path: Path) -> None:
    knowledge = make_knowledge(tmp_path / "kb", ["reset-password", "refunds", "webhooks"])
    store = KnowledgeStore(
        offline_settings(tmp_path / "chroma", knowledge_dir=knowledge, collection="reload-test")
    )
    assert store.ensure_loaded() is True
    first = store.corpus()
    first_ids = {c.id for c in first}
    assert store.ensure_loaded() is False  # not empty: nothing to do

    again = store.reload()
    assert again["added"] == 0 and again["removed"] == 0 and again["unchanged"] == len(first_ids)
    assert {c.id for c in store.corpus()} == first_ids and store.count() == len(first_ids)

    # Change one article: only its chunks are replaced, the others keep their ids.
    path = knowledge / "refunds.md"
    path.write_text(path.read_text().replace("30 days", "45 days"))
    changed = store.reload()
    assert changed["added"] >= 1 and changed["removed"] == changed["added"]
    after = store.corpus()
    assert store.count() == len(first_ids)
    unchanged = {c.id for c in first if c.article_id != "refunds"}
    assert {c.id for c in after if c.article_id != "refunds"} == unchanged
    assert not {c.id for c in after if c.article_id == "refunds"} <= first_ids
    refunds_text = " ".join(c.text for c in after if c.article_id == "refunds")
    assert "45 days" in refunds_text and "30 days" not in refunds_text

    # Remove an article: its chunks go.
    (knowledge / "webhooks.md").unlink()
    removed = store.reload()
    assert removed["removed"] >= 1 and removed["added"] == 0
    assert "webhooks" not in {c.article_id for c in store.corpus()}

    # A brand-new store on the same directory sees the same persisted state.
    reopened = KnowledgeStore(store.settings)
    assert {c.id for c in reopened.corpus()} == {c.id for c in store.corpus()}
