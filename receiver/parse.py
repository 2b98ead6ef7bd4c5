"""Pull alert names and statuses out of what Alertmanager sends (Slack text, email subject and body)."""

from __future__ import annotations

import re
from typing import Any

# Alertmanager's default titles/subjects: "[FIRING:2] HighErrorRate (ml-api critical)".
_HEADER = re.compile(r"\[(FIRING|RESOLVED)(?::\d+)?\]\s*([A-Za-z_:][A-Za-z0-9_:]*)", re.IGNORECASE)
# Custom templates usually print the label itself: "alertname=X", "alertname: X", "*Alert:* X".
_LABEL = re.compile(r"alertname\W{0,3}\s*[=:]\s*[\"'`*]*([A-Za-z_:][A-Za-z0-9_:]*)", re.IGNORECASE)
_STATUS = re.compile(r"\b(FIRING|RESOLVED)\b", re.IGNORECASE)


def alert_names(*texts: str) -> list[str]:
    """Alert names in order of first appearance, without duplicates."""
    names: list[str] = []
    for text in texts:
        if not text:
            continue
        for match in _HEADER.finditer(text):
            if match.group(2) not in names:
                names.append(match.group(2))
        for match in _LABEL.finditer(text):
            if match.group(1) not in names:
                names.append(match.group(1))
    return names


def alert_status(*texts: str) -> str | None:
    """`firing`, `resolved`, `mixed` or None when the text names no status."""
    found = {m.group(1).lower() for text in texts if text for m in _STATUS.finditer(text)}
    if not found:
        return None
    return found.pop() if len(found) == 1 else "mixed"


def slack_texts(payload: dict[str, Any]) -> list[str]:
    """Every human-readable string of a Slack message: text, attachments and blocks."""
    texts: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str) and value:
            texts.append(value)

    add(payload.get("text"))
    for attachment in payload.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        for key in ("pretext", "title", "fallback", "text"):
            add(attachment.get(key))
        for item in attachment.get("fields") or []:
            if isinstance(item, dict):
                add(item.get("title"))
                add(item.get("value"))
    for block in payload.get("blocks") or []:
        _block_texts(block, add)
    return texts


def _block_texts(node: Any, add) -> None:
    # Block Kit nests text objects ({"type": "mrkdwn", "text": "..."}) inside sections, fields, contexts.
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                add(value)
            else:
                _block_texts(value, add)
    elif isinstance(node, list):
        for item in node:
            _block_texts(item, add)
