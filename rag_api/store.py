"""The knowledge base in ChromaDB: markdown articles, chunked on sentence boundaries, searched by embedding.

Embedded `PersistentClient` by default; `HttpClient` when `chroma_host` is set (compose). Every Chroma call is
blocking: async handlers call this module through `asyncio.to_thread`. A Chroma server that cannot be reached
raises `StoreUnavailable`; the client is rebuilt lazily on the next call, so the service recovers by itself.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rag_api.embeddings import MODEL_NAME, MiniLMEmbedder, MiniLMEmbeddingFunction, get_embedder
from rag_api.settings import PACKAGE_DIR, RAGSettings
from rag_api.text import sentences

log = logging.getLogger(__name__)

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


class StoreUnavailable(Exception):
    """The vector store cannot be reached (Chroma server down) or failed."""


class KnowledgeError(Exception):
    """The knowledge directory cannot be loaded; nothing was changed. `status`: 409 when it is missing or
    holds nothing to load, 422 when an article is bad (`file` names it)."""

    def __init__(self, reason: str, *, status: int, file: str | None = None) -> None:
        super().__init__(f"{file}: {reason}" if file else reason)
        self.reason = reason
        self.status = status
        self.file = file


def shown_path(path: Path) -> str:
    """A path fit for API answers: relative to the project when inside it, else only its last part (an
    absolute path would tell every caller how the host is laid out)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(PACKAGE_DIR.parent).as_posix()
    except ValueError:
        return resolved.name


@dataclass(frozen=True)
class Article:
    id: str  # the file stem
    title: str
    category: str
    blocks: list[tuple[str, str]]  # (kind, text): kind "heading" | "text"


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    article_id: str
    title: str
    category: str
    index: int
    text: str  # what is stored and shown: blocks one per line, headings prefixed by "#"
    embed_text: str  # what is embedded: title and section heading first, for retrieval context

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "title": self.title,
            "category": self.category,
            "chunk": self.index,
        }


@dataclass(frozen=True)
class RetrievedChunk:
    id: str
    article_id: str
    title: str
    category: str
    index: int
    text: str
    distance: float

    @classmethod
    def from_chroma(
        cls, chunk_id: str, document: str | None, meta: Mapping[str, Any], distance: float = 0.0
    ) -> RetrievedChunk:
        """One row of a Chroma query or get result (metadata as `ChunkRecord.metadata` wrote it)."""
        return cls(
            id=chunk_id,
            article_id=str(meta.get("article_id", "")),
            title=str(meta.get("title", "")),
            category=str(meta.get("category", "")),
            index=int(meta.get("chunk", 0)),
            text=document or "",
            distance=float(distance),
        )


def _clean_inline(text: str) -> str:
    """Drop markdown emphasis markers: they add nothing to embeddings or answers."""
    return text.replace("**", "").replace("__", "")


def parse_article(path: Path) -> Article:
    """Front matter (`title`, `category`) and the body as blocks: headings, paragraphs and list items.

    Wrapped lines of a paragraph or list item are joined, so that each block is one line of text.
    Raises UnicodeDecodeError (not UTF-8), yaml.YAMLError or ValueError (bad front matter).
    """
    raw = path.read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(raw)
    if match:
        loaded = yaml.safe_load(match.group(1))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError("the front matter is not a mapping of keys to values")
        meta = loaded or {}
        raw = raw[match.end() :]
    elif raw.startswith("---"):
        raise ValueError("the front matter has no closing --- line")
    blocks: list[tuple[str, str]] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            blocks.append(("text", _clean_inline(" ".join(current))))
            current.clear()

    fence: list[str] | None = None  # lines of an open ``` code block
    for line in raw.splitlines():
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith("```"):
                blocks.append(("text", " ".join(fence)))
                fence = None
            elif stripped:
                fence.append(stripped)
            continue
        if stripped.startswith("```"):
            flush()
            fence = []
            continue
        heading = _HEADING.match(stripped)
        if stripped.startswith("|"):  # a table row is a block of its own; the |---| rule is dropped
            flush()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                blocks.append(("text", _clean_inline(" | ".join(cells))))
        elif not stripped:
            flush()
        elif heading:
            flush()
            blocks.append(("heading", _clean_inline(heading.group(2).strip())))
        elif _LIST_ITEM.match(line) and not line.startswith("    "):
            flush()
            current.append(stripped)
        else:
            current.append(stripped)
    flush()
    if fence:
        blocks.append(("text", " ".join(fence)))
    title = str(meta.get("title") or next((t for k, t in blocks if k == "heading"), path.stem))
    return Article(id=path.stem, title=title, category=str(meta.get("category") or "general"), blocks=blocks)


def _chunk_id(article: Article, index: int, text: str) -> str:
    # Everything stored with the chunk goes into its id: an unchanged chunk keeps its id across reloads,
    # a changed one gets a new id (upserted) and the old id is deleted.
    key = "\x1f".join([article.id, article.title, article.category, str(index), text])
    return hashlib.sha1(key.encode()).hexdigest()


def chunk_article(article: Article, size: int, overlap: int) -> list[ChunkRecord]:
    """Greedy chunks of whole sentences/list items up to `size` characters.

    A chunk repeats the last sentences of the previous one (up to `overlap` characters) so that an answer
    spanning a boundary is still retrieved. A new section starts a new chunk unless the current one is small.
    """
    units: list[tuple[str, str]] = []  # (section heading, sentence or list item)
    section = article.title
    for kind, text in article.blocks:
        if kind == "heading":
            section = text
            units.append((section, "#"))  # a section marker
            continue
        units.extend((section, sentence) for sentence in sentences(text, prose=True) if len(text) > size)
        if len(text) <= size:
            units.append((section, text))

    chunks: list[tuple[str, list[str]]] = []
    current: list[str] = []
    current_section = article.title
    length = 0
    for section, unit in units:
        if unit == "#":
            if length >= size // 3:  # close a chunk at a section boundary unless it is still small
                chunks.append((current_section, current))
                current, length = [], 0
            if not current:
                current_section = section
            current.append(f"## {section}" if section != article.title else f"# {section}")
            length += len(section) + 3
            continue
        if length + len(unit) > size and any(not line.startswith("#") for line in current):
            chunks.append((current_section, current))
            carried: list[str] = []
            carried_length = 0
            for previous in reversed(current):
                if previous.startswith("#") or carried_length + len(previous) > overlap:
                    break
                carried.insert(0, previous)
                carried_length += len(previous) + 1
            current, length, current_section = carried, carried_length, section
        current.append(unit)
        length += len(unit) + 1
    if any(not line.startswith("#") for line in current):
        chunks.append((current_section, current))

    records: list[ChunkRecord] = []
    for index, (section, lines) in enumerate(chunks):
        text = "\n".join(lines)
        embed_text = f"{article.title}. {section}.\n{text}" if section != article.title else text
        if not text.startswith("# "):
            embed_text = f"{article.title}.\n{embed_text}" if section == article.title else embed_text
        records.append(
            ChunkRecord(
                id=_chunk_id(article, index, text),
                article_id=article.id,
                title=article.title,
                category=article.category,
                index=index,
                text=text,
                embed_text=embed_text,
            )
        )
    return records


def _read_article(path: Path) -> Article:
    try:
        return parse_article(path)
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (invalid byte at offset {exc.start})"
    except yaml.YAMLError as exc:
        reason = f"the front matter is not valid YAML ({str(exc).splitlines()[0]})"
    except (ValueError, OSError) as exc:
        reason = str(exc.strerror if isinstance(exc, OSError) else exc)
    raise KnowledgeError(reason, status=422, file=path.name)


def load_knowledge(directory: Path, size: int, overlap: int) -> tuple[list[Article], list[ChunkRecord]]:
    """Every article of `directory` and its chunks. Raises KnowledgeError rather than return nothing: an empty
    result would make a reload delete the whole collection."""
    if not directory.is_dir():
        raise KnowledgeError(f"the knowledge directory {shown_path(directory)} does not exist", status=409)
    # README.md describes the corpus; it is not an article.
    paths = sorted(p for p in directory.glob("*.md") if p.name.lower() != "readme.md")
    articles = [_read_article(path) for path in paths]
    records: list[ChunkRecord] = []
    for article in articles:
        records.extend(chunk_article(article, size, overlap))
    if not records:
        raise KnowledgeError(
            f"the knowledge directory {shown_path(directory)} holds no article text", status=409
        )
    return articles, records


def embed_by_length(embedder: MiniLMEmbedder, texts: list[str]) -> np.ndarray:
    """Embed in order of length: a batch is padded to its longest text, so similar lengths waste less."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = embedder.embed([texts[i] for i in order])
    result = np.empty_like(vectors)
    result[order] = vectors
    return result


class KnowledgeStore:
    """The Chroma collection of knowledge chunks; thread-safe, reconnects lazily."""

    def __init__(self, settings: RAGSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._collection: Any = None
        self._corpus: list[RetrievedChunk] | None = None  # every chunk, for the hallucination fault

    # -- connection ------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "server" if self.settings.chroma_host else "embedded"

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.settings.chroma_host:
            return chromadb.HttpClient(
                host=self.settings.chroma_host, port=self.settings.chroma_port, settings=chroma_settings
            )
        self.settings.chroma_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.settings.chroma_path), settings=chroma_settings)

    def collection(self) -> Any:
        with self._lock:
            if self._collection is None:
                try:
                    self._collection = self._client().get_or_create_collection(
                        self.settings.collection,
                        embedding_function=MiniLMEmbeddingFunction(),
                        configuration={"hnsw": {"space": "cosine"}},
                    )
                except Exception as exc:
                    raise StoreUnavailable(f"Chroma ({self.mode}) is unavailable: {exc}") from exc
            return self._collection

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one collection call; any failure drops the client so that the next call reconnects."""
        collection = self.collection()
        try:
            return fn(collection, *args, **kwargs)
        except Exception as exc:
            with self._lock:
                self._collection = None
            raise StoreUnavailable(f"Chroma ({self.mode}) call failed: {exc}") from exc

    # -- reads -----------------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._call(lambda c: c.count()))

    def search(self, query_embedding: np.ndarray, top_k: int) -> list[RetrievedChunk]:
        """The `top_k` nearest chunks to an (already computed) query embedding, nearest first."""
        result = self._call(
            lambda c: c.query(
                query_embeddings=[np.asarray(query_embedding, dtype=np.float32)],
                n_results=top_k,
                include=["documents", "metadatas", "distances"],
            )
        )
        ids = result["ids"][0]
        documents = result["documents"][0]
        metadatas = result["metadatas"][0]
        distances = result["distances"][0]
        return [
            RetrievedChunk.from_chroma(chunk_id, document, meta, distance)
            for chunk_id, document, meta, distance in zip(ids, documents, metadatas, distances, strict=True)
        ]

    def corpus(self) -> list[RetrievedChunk]:
        """Every chunk (cached until the next reload)."""
        with self._lock:
            if self._corpus is None:
                result = self._call(lambda c: c.get(include=["documents", "metadatas"]))
                self._corpus = [
                    RetrievedChunk.from_chroma(chunk_id, document, meta)
                    for chunk_id, document, meta in zip(
                        result["ids"], result["documents"], result["metadatas"], strict=True
                    )
                ]
            return self._corpus

    def stats(self) -> dict[str, Any]:
        corpus = self.corpus()
        return {
            "articles": len({c.article_id for c in corpus}),
            "chunks": self.count(),
            "collection": self.settings.collection,
            "embedding_model": MODEL_NAME,
            "store": self.mode,
            "knowledge_dir": shown_path(self.settings.knowledge_dir),
        }

    # -- writes ----------------------------------------------------------------------------------------
    def _load(self) -> tuple[list[Article], list[ChunkRecord]]:
        articles, records = load_knowledge(
            self.settings.knowledge_dir, self.settings.chunk_size, self.settings.chunk_overlap
        )
        # Identical content would give identical ids: keep the first (upsert refuses duplicate ids).
        return articles, list({r.id: r for r in reversed(records)}.values())[::-1]

    def _stored_ids(self) -> set[str]:
        return set(self._call(lambda c: c.get(include=[]))["ids"])

    def ensure_loaded(self) -> bool:
        """Make the collection match the knowledge directory when it does not: a first start, or a reload cut
        short by a crash. True when it changed something. Chunk ids hash their content, so equal id sets mean
        equal content. A directory that cannot be loaded leaves a non-empty collection as it is."""
        with self._lock:
            try:
                articles, records = self._load()
            except KnowledgeError as exc:
                if self.count() > 0:
                    log.error("knowledge not verified, serving the stored collection: %s", exc)
                    return False
                raise
            stored, wanted = self._stored_ids(), {r.id for r in records}
            if stored == wanted:
                return False
            log.warning(
                "stored knowledge differs from %s (%d chunks missing, %d stale): repairing",
                shown_path(self.settings.knowledge_dir),
                len(wanted - stored),
                len(stored - wanted),
            )
            self._apply(articles, records, stored)
            return True

    def reload(self) -> dict[str, int]:
        """Make the collection match the knowledge directory: upsert new/changed chunks, delete stale ones.
        Raises KnowledgeError (collection untouched) if the directory is missing, empty or has a bad file."""
        with self._lock:
            articles, records = self._load()
            return self._apply(articles, records, self._stored_ids())

    def _apply(
        self, articles: list[Article], records: list[ChunkRecord], existing: set[str]
    ) -> dict[str, int]:
        wanted = {r.id for r in records}
        stale = sorted(existing - wanted)
        new = [r for r in records if r.id not in existing]
        # New chunks first, stale ones after: a crash in between leaves extra chunks (removed by the check at
        # the next start), never missing ones.
        if new:
            embeddings = embed_by_length(get_embedder(), [r.embed_text for r in new])
            for start in range(0, len(new), 256):
                batch = new[start : start + 256]
                self._call(
                    lambda c, b=batch, s=start: c.upsert(
                        ids=[r.id for r in b],
                        documents=[r.text for r in b],
                        metadatas=[r.metadata for r in b],
                        embeddings=embeddings[s : s + len(b)],
                    )
                )
        if stale:
            self._call(lambda c: c.delete(ids=stale))
        self._corpus = None
        summary = {
            "articles": len(articles),
            "chunks": len(records),
            "added": len(new),
            "removed": len(stale),
            "unchanged": len(records) - len(new),
        }
        log.info("knowledge reloaded from %s: %s", self.settings.knowledge_dir, summary)
        return summary
