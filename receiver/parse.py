"""What Alertmanager sends, read: the Slack payload's shape, its texts, alert names, statuses, group keys."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

# Alertmanager's default titles/subjects: "[FIRING:2] HighErrorRate (ml-api critical)".
_HEADER = re.compile(r"\[(FIRING|RESOLVED)(?::\d+)?\]\s*([A-Za-z_:][A-Za-z0-9_:]*)", re.IGNORECASE)
# Custom templates usually print the label itself: "alertname=X", "alertname: X", "*Alert:* X".
_LABEL = re.compile(r"alertname\W{0,3}\s*[=:]\s*[\"'`*]*([A-Za-z_:][A-Za-z0-9_:]*)", re.IGNORECASE)
_STATUS = re.compile(r"\b(FIRING|RESOLVED)\b", re.IGNORECASE)
_FIRING_COUNT = re.compile(r"^\[(FIRING|RESOLVED)(?::\d+)?\]", re.IGNORECASE)
# One `name=value` of a labels line ("labels: alertname=X service=ml_api", Slack's "`alertname=X ...`").
_PAIR = re.compile(r"(?<![\w=])([A-Za-z_][A-Za-z0-9_]*)=([^\s`=]+)")
MAX_SUMMARY_CHARS = 4000


class _Open(BaseModel):
    # Slack accepts (and Alertmanager sends) more keys than the receiver reads: keep them, check what is read.
    model_config = ConfigDict(extra="allow", strict=True)


class SlackField(_Open):
    title: str | None = None
    value: str | None = None
    short: bool | None = None


class SlackAttachment(_Open):
    title: str | None = None
    title_link: str | None = None
    pretext: str | None = None
    text: str | None = None
    fallback: str | None = None
    color: str | None = None
    footer: str | None = None
    callback_id: str | None = None
    fields: list[SlackField] | None = None


class SlackPayload(_Open):
    """An incoming-webhook message: Alertmanager's (attachments) or a hand-written one (text, blocks)."""

    text: str | None = None
    channel: str | None = None
    username: str | None = None
    attachments: list[SlackAttachment] | None = None
    blocks: list[dict[str, Any]] | None = None


def slack_shape_error(payload: dict[str, Any]) -> str | None:
    """None for a well-formed payload, else `field: message` for the first wrong field."""
    try:
        SlackPayload.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "payload"
        return f"{field}: {error['msg']}"
    return None


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


def alert_label_sets(*texts: str) -> list[dict[str, str]]:
    """The label set of every alert a message prints on a line of its own (the lab's templates do, as
    `alertname=X family=... service=...`), in order, without duplicates: which service an alert of a given
    name was about. A line counts when it has an `alertname`; messages without such lines give []."""
    found: list[dict[str, str]] = []
    for text in texts:
        for line in (text or "").splitlines():
            labels = dict(_PAIR.findall(line))
            if "alertname" in labels and labels not in found:
                found.append(labels)
    return found


def alert_status(*texts: str) -> str | None:
    """`firing`, `resolved`, `mixed` or None when the text names no status."""
    found = {m.group(1).lower() for text in texts if text for m in _STATUS.finditer(text)}
    if not found:
        return None
    return found.pop() if len(found) == 1 else "mixed"


def slack_texts(payload: dict[str, Any]) -> list[str]:
    """Every human-readable string of a (shape-checked) Slack message: text, attachments and blocks."""
    texts: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str) and value:
            texts.append(value)

    add(payload.get("text"))
    for attachment in payload.get("attachments") or []:
        for key in ("pretext", "title", "fallback", "text"):
            add(attachment.get(key))
        for item in attachment.get("fields") or []:
            add(item.get("title"))
            add(item.get("value"))
    _block_texts(payload.get("blocks") or [], add)
    return texts


def _block_texts(root: Any, add) -> None:
    # Block Kit nests text objects ({"type": "mrkdwn", "text": "..."}) inside sections, fields, contexts.
    # Walked with a stack: the depth is bounded before parsing, but no input should cost a RecursionError.
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in reversed(list(node.items())):
                if key == "text" and isinstance(value, str):
                    add(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(reversed(node))


def split_identity(identity: str | None) -> tuple[str | None, str | None]:
    """(group key, alert sets) from the lab templates' `<group>|firing=<fp>@<start>,...|resolved=...` (each
    alert's fingerprint and start time, so a new firing of the same alert is a new set); any other string is
    a group key with no alert sets (the caller then compares whole contents)."""
    if not identity:
        return None, None
    group, separator, rest = identity.partition("|")
    if not separator:
        return identity, None
    sets = []
    for part in rest.split("|"):
        name, _, fingerprints = part.partition("=")
        sets.append(f"{name}={','.join(sorted(fp for fp in fingerprints.split(',') if fp))}")
    return group, "|".join(sets)


def slack_group_key(payload: dict[str, Any]) -> str | None:
    """The identity the lab's template puts in `callback_id`; else the title without its firing count."""
    for attachment in payload.get("attachments") or []:
        if attachment.get("callback_id"):
            return str(attachment["callback_id"])
    for attachment in payload.get("attachments") or []:
        if attachment.get("title"):
            return _FIRING_COUNT.sub("", str(attachment["title"])).strip() or None
    return None
