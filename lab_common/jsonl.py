"""JSON Lines input of the batch CLIs (rag_api.evaluation, rag_api.safety): one object a line, errors named
by `path:line`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_objects(path: Path, error: type[ValueError] = ValueError) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`path:line`, object) for each non-blank line; `error` (naming the line) when one is not a JSON
    object. The caller checks the fields, naming the line it was given."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{where}: expected a JSON object")
            yield where, row
