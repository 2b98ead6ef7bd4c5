"""Shared set-up for the rag_api tests: one real Chroma index of the shipped knowledge, built once per run.

Embedding the whole knowledge base costs tens of seconds of CPU; each test module gets its own copy of the
index built by the first one (a plain directory copy of a real persistent Chroma store).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from rag_api.settings import RAGSettings

_lock = threading.Lock()
_template: Path | None = None


def offline_settings(chroma_path: Path, **overrides: Any) -> RAGSettings:
    """Offline whatever the environment says (no key, no base URL), lab profile, no background warm-up."""
    values: dict[str, Any] = {
        "chroma_path": chroma_path,
        "chroma_host": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "lab_profile": True,
        "admin_token": None,
        "warm_sentence_cache": False,
        "log_level": "WARNING",
        "records_path": chroma_path.parent / "records.sqlite",  # never the working directory's var/
    }
    values.update(overrides)
    return RAGSettings(**values)


def template_index() -> Path:
    """A Chroma directory holding the shipped knowledge base (built on first use, then reused)."""
    global _template
    with _lock:
        if _template is None:
            from rag_api.store import KnowledgeStore

            root = Path(tempfile.mkdtemp(prefix="rag-index-"))
            store = KnowledgeStore(offline_settings(root / "chroma"))
            store.reload()
            _template = root / "chroma"
        return _template


def copy_index(destination: Path) -> Path:
    """A private copy of the template index at `destination` (which must not exist)."""
    shutil.copytree(template_index(), destination)
    return destination
