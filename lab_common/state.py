"""Where the lab keeps its state, for the paths two programs must agree on without being told.

The native lab (`labctl up`) keeps its state in `var/` of the repository, or in `$LABCTL_VAR` (a second lab
beside a running one). rag_api writes its answer records there, and the records and feedback CLIs read
them from there by default: both ask `records_path()`, so neither needs RAG_RECORDS_PATH to find the other.
The records have a directory of their own, so that a container can keep them on a volume (docker-compose).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS_FILE = Path("records") / "answers.sqlite"


def lab_var_dir() -> Path:
    """The lab's state directory: $LABCTL_VAR, else the repository's var/."""
    return Path(os.environ.get("LABCTL_VAR") or ROOT / "var").resolve()


def records_path(var_dir: Path | None = None) -> Path:
    """The answer records file of the lab whose state is in `var_dir` (default: this lab's)."""
    return (var_dir or lab_var_dir()) / RECORDS_FILE
