"""The readable block printed on the lab console for each notification.

Everything printed comes from the network (channel names, paths, subjects, alert text), so control characters
are escaped: a newline or an ANSI sequence in a field must not forge a block or repaint the terminal.
"""

from __future__ import annotations

import unicodedata
from typing import Any, TextIO

SUMMARY_LINES = 6
FIELD_CHARS = 300


def printable(value: Any, limit: int = FIELD_CHARS) -> str:
    """`value` as one console-safe line: control, format (bidi) and line-separator characters escaped."""
    text = str(value if value is not None else "")[:limit]
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def block(item: dict[str, Any]) -> str:
    status = printable((item.get("status") or "?").upper(), 20)
    names = ", ".join(printable(name, 100) for name in item.get("alerts") or []) or "(no alert name found)"
    if item["channel"] == "slack":
        where = f"slack {printable(item.get('path'))} channel={printable(item.get('slack_channel') or '-')}"
        summary = str(item.get("summary", ""))
    else:
        where = f"email to={printable(','.join(item.get('to') or []))}"
        summary = str(item.get("subject", ""))
    lines = [
        f"=== {printable(item['received_at'], 40)}  {where}",
        f"    {status:<8} {names}",
        *(f"    | {printable(line)}" for line in summary.split("\n")[:SUMMARY_LINES]),
    ]
    return "\n".join(lines)


def echo(item: dict[str, Any], out: TextIO) -> None:
    print(block(item), file=out, flush=True)
