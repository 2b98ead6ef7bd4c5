"""Strict JSON both ways: no NaN/Infinity (which no JSON reader after us accepts), bounded nesting."""

from __future__ import annotations

import json
import math
from typing import Any


class TooDeep(ValueError):
    """Nested deeper than the parser's recursion allows."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(literal: str) -> float:
    # `1e999` is valid JSON syntax, but Python reads it as inf, which no strict writer (ours) can write back.
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal} is out of the float range")
    return value


def loads(text: str | bytes) -> Any:
    """`json.loads` that refuses NaN/Infinity and out-of-range numbers such as 1e999; every failure (even a
    recursion or int-size limit) is a ValueError, so callers answer 400 or skip a line instead of crashing."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError as exc:
        raise TooDeep("nested too deeply") from exc


def dumps(value: Any) -> str:
    """One line of strict JSON (non-ASCII kept); raises ValueError for NaN/Infinity."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=str, separators=(",", ":"))


def depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion; stops counting past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest
